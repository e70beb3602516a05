package rest

import (
	"net/http"
	"strings"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// devSignIn signs anyone in by user id when --dev-auth is on (API
// "Authentication"): a token of TokenTTL for that user and name.
func (a *API) devSignIn(w http.ResponseWriter, r *http.Request) {
	if !a.cfg.DevAuth {
		a.writeCode(w, r, chat.CodeNotFound, "dev sign-in is disabled")
		return
	}
	var req struct {
		UserID string `json:"user_id"`
		Name   string `json:"name"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if !chat.ValidUserID(req.UserID) {
		a.writeCode(w, r, chat.CodeInvalid, "user_id must be 1-64 characters of [A-Za-z0-9._@-]")
		return
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = req.UserID
	}
	if len(name) > 128 {
		a.writeCode(w, r, chat.CodeInvalid, "name is longer than 128 bytes")
		return
	}
	user := chat.User{ID: req.UserID, Name: name}
	tok, err := a.verifier.Issue(user, a.cfg.TokenTTL)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	a.recordClaim(r.Context(), user)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"token": tok, "user": user})
}
