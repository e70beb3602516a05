package rest

import (
	"net/http"

	"github.com/parleychat/parley/delivery/httpx"
)

// getPresence answers GET /v1/conversations/{cid}/presence?after=&limit=:
// the online members in user-id order, a page at a time.
func (a *API) getPresence(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if err := a.isMember(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	q := r.URL.Query()
	limit, err := httpx.IntParam(q, "limit", 500, 1, 500)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	online, next, err := a.presence.OnlineMembers(r.Context(), cid, q.Get("after"), int(limit))
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	var nextAfter *string
	if next != "" {
		nextAfter = &next
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"online": online, "next_after": nextAfter})
}
