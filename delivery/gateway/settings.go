package gateway

import (
	"context"
	"net/http"

	"github.com/parleychat/parley/chat"
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

func (g *Gateway) putSettings(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	cid := r.PathValue("cid")
	if err := g.isMember(r.Context(), cid, u.ID); err != nil {
		g.writeErr(w, r, err)
		return
	}
	var req settingsBody
	if err := g.decodeJSON(w, r, &req); err != nil {
		g.writeErr(w, r, err)
		return
	}
	if req.Muted == nil {
		g.writeCode(w, r, chat.CodeInvalid, "muted must be true or false")
		return
	}
	set := chat.ConversationSettings{Muted: *req.Muted}
	if err := g.store.PutSettings(r.Context(), u.ID, cid, set); err != nil {
		g.writeErr(w, r, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, set)
}

func (g *Gateway) getSettings(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	cid := r.PathValue("cid")
	if err := g.isMember(r.Context(), cid, u.ID); err != nil {
		g.writeErr(w, r, err)
		return
	}
	all, err := g.store.Settings(r.Context(), u.ID)
	if err != nil {
		g.writeErr(w, r, unavailable(err))
		return
	}
	writeJSON(w, http.StatusOK, all[cid])
}

// viewWithSettings is view plus the caller's own settings of c (one read
// of the caller's settings). A failed read shows the defaults rather than
// failing the answer: settings only decorate it.
func (g *Gateway) viewWithSettings(ctx context.Context, c chat.Conversation, uid string, m *chat.Membership) chat.Conversation {
	v := g.view(ctx, c, uid, m)
	if all, err := g.store.Settings(ctx, uid); err == nil {
		v.Muted = all[c.ID].Muted
	}
	return v
}
