package rest

import (
	"context"
	"net/http"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// Conversation settings are a member's own (PUT …/settings). They live in
// rows of their own (Store.PutSettings), not in the membership row: the
// sequencer rewrites membership rows on sends and reads from the state it
// holds, so a setting written into the row beside it would race those
// rewrites unless it went through the command log as well. A setting
// orders with nothing, emits no event, and only its owner writes it, so
// a row apart costs the send path nothing and cannot be clobbered.

// settingsBody is the wire shape of a member's settings.
type settingsBody struct {
	Muted *bool `json:"muted"`
}

func (a *API) putSettings(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if err := a.isMember(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	var req settingsBody
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Muted == nil {
		a.writeCode(w, r, chat.CodeInvalid, "muted must be true or false")
		return
	}
	set := chat.ConversationSettings{Muted: *req.Muted}
	if err := a.store.PutSettings(r.Context(), u.ID, cid, set); err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, set)
}

func (a *API) getSettings(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if err := a.isMember(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	all, err := a.store.Settings(r.Context(), u.ID)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, all[cid])
}

// viewWithSettings is view plus the caller's own settings of c (one read
// of the caller's settings). A failed read shows the defaults rather than
// failing the answer: settings only decorate it.
func (a *API) viewWithSettings(ctx context.Context, c chat.Conversation, uid string, m *chat.Membership) chat.Conversation {
	v := a.view(ctx, c, uid, m)
	if all, err := a.store.Settings(ctx, uid); err == nil {
		v.Muted = all[c.ID].Muted
	}
	return v
}
