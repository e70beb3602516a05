package rest

import (
	"net/http"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// listConversationsParallelism bounds the conversation reads of one
// listing that run at once (a networked store answers them side by side).
const listConversationsParallelism = 16

// listConversations answers the caller's conversations, newest activity
// first: one read of the caller's memberships, then one read of each
// conversation's state, which carries its unread tally and last message,
// so no message is read.
func (a *API) listConversations(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	ctx := r.Context()
	ms, err := a.store.Memberships(ctx, u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	ms = slices.DeleteFunc(ms, func(m chat.Membership) bool { return !m.Active })
	settings, err := a.store.Settings(ctx, u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	convs := make([]chat.Conversation, len(ms))
	found := make([]bool, len(ms))
	var eg errgroup.Group
	eg.SetLimit(listConversationsParallelism)
	for i := range ms {
		eg.Go(func() error {
			c, err := a.store.Conversation(ctx, ms[i].ConversationID)
			if err != nil {
				if chat.IsNotFound(err) {
					return nil
				}
				return err
			}
			convs[i], found[i] = a.view(ctx, c, u.ID, &ms[i]), true
			convs[i].Muted = settings[c.ID].Muted
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		a.writeErr(w, r, err)
		return
	}
	out := make([]chat.Conversation, 0, len(ms))
	for i := range convs {
		if found[i] {
			out = append(out, convs[i])
		}
	}
	slices.SortStableFunc(out, func(a, b chat.Conversation) int { return b.LastActivity.Compare(a.LastActivity) })
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"conversations": out})
}

func (a *API) createConversation(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	var req struct {
		Kind    string   `json:"kind"`
		Title   string   `json:"title"`
		Members []string `json:"members"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Kind == "" {
		req.Kind = chat.KindGroup
	}
	if req.Kind != chat.KindGroup && req.Kind != chat.KindDirect {
		a.writeCode(w, r, chat.CodeInvalid, `kind must be "group" or "direct"`)
		return
	}
	title, err := chat.CleanTitle(req.Title)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	members := []string{}
	for _, m := range req.Members {
		if !chat.ValidUserID(m) {
			a.writeCode(w, r, chat.CodeInvalid, "members must be valid user ids")
			return
		}
		if m != u.ID && !slices.Contains(members, m) {
			members = append(members, m)
		}
	}
	if len(members) > chat.MaxCreateMembers-1 {
		a.writeCode(w, r, chat.CodeInvalid, "too many members; add more after creating")
		return
	}
	cmd := &chat.Command{Op: chat.OpCreate, Actor: u.ID, Kind: req.Kind, Title: &title, Members: members}
	if req.Kind == chat.KindDirect {
		if len(members) != 1 {
			a.writeCode(w, r, chat.CodeInvalid, "a direct conversation has exactly one other member")
			return
		}
		cmd.ConversationID = chat.DirectConversationID(u.ID, members[0])
		if c, m, err := a.membership(r.Context(), cmd.ConversationID, u.ID); err == nil {
			httpx.WriteJSON(w, http.StatusOK, a.viewWithSettings(r.Context(), c, u.ID, &m))
			return
		}
	} else {
		cmd.ConversationID = chat.NewID("cnv")
	}
	res, err := a.submit(r.Context(), cmd)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	c := *res.Conversation
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/conversations/"+c.ID)
	}
	httpx.WriteJSON(w, status, a.viewWithSettings(r.Context(), c, u.ID, nil))
}

func (a *API) getConversation(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	c, m, err := a.membership(r.Context(), r.PathValue("cid"), u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.viewWithSettings(r.Context(), c, u.ID, &m))
}

func (a *API) patchConversation(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if !a.requireMember(w, r, cid) {
		return
	}
	var req struct {
		Title *string `json:"title"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Title == nil {
		a.writeCode(w, r, chat.CodeInvalid, "title is required")
		return
	}
	title, err := chat.CleanTitle(*req.Title)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	res, err := a.submit(r.Context(), &chat.Command{Op: chat.OpRename, ConversationID: cid, Actor: u.ID, Title: &title})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a.viewWithSettings(r.Context(), *res.Conversation, u.ID, nil))
}

func (a *API) addMember(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid, uid := r.PathValue("cid"), r.PathValue("uid")
	if !a.requireMember(w, r, cid) {
		return
	}
	if !chat.ValidUserID(uid) {
		a.writeCode(w, r, chat.CodeInvalid, "invalid user id")
		return
	}
	res, err := a.submit(r.Context(), &chat.Command{Op: chat.OpAddMember, ConversationID: cid, Actor: u.ID, UserID: uid})
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, a.viewWithSettings(r.Context(), *res.Conversation, u.ID, nil))
}

func (a *API) removeMember(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid, uid := r.PathValue("cid"), r.PathValue("uid")
	if !a.requireMember(w, r, cid) {
		return
	}
	if !chat.ValidUserID(uid) {
		a.writeCode(w, r, chat.CodeNotFound, "not a member")
		return
	}
	if _, err := a.submit(r.Context(), &chat.Command{Op: chat.OpRemoveMember, ConversationID: cid, Actor: u.ID, UserID: uid}); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
