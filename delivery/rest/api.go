package rest

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
)

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

// submit appends cmd to the commands log and waits for its result
// (delivery/submit: "unavailable" only for a command that will never be
// applied).
func (a *API) submit(ctx context.Context, cmd *chat.Command) (chat.Result, error) {
	return a.submitter.Wait(ctx, cmd)
}

// member loads a conversation the caller belongs to; 404 otherwise, so
// non-members cannot learn that it exists.
func (a *API) member(ctx context.Context, cid, uid string) (chat.Conversation, error) {
	c, _, err := a.membership(ctx, cid, uid)
	return c, err
}

// membership is member with the caller's membership. Membership is
// decided by the caller's own membership row, never by searching the
// conversation's member list.
func (a *API) membership(ctx context.Context, cid, uid string) (chat.Conversation, chat.Membership, error) {
	notFound := chat.Errorf(chat.CodeNotFound, "conversation not found")
	if !chat.ValidID(cid) {
		return chat.Conversation{}, chat.Membership{}, notFound
	}
	m, err := a.store.Membership(ctx, cid, uid)
	if err != nil {
		if chat.IsNotFound(err) {
			return chat.Conversation{}, m, notFound
		}
		return chat.Conversation{}, m, unavailable(err)
	}
	if !m.Active {
		return chat.Conversation{}, m, notFound
	}
	c, err := a.store.Conversation(ctx, cid)
	if err != nil {
		if chat.IsNotFound(err) {
			return c, m, notFound
		}
		return c, m, unavailable(err)
	}
	return c, m, nil
}

// isMember is member without loading the conversation: one small
// membership row, for the send path (a big group's record is large), and
// none while the member cache vouches for the user.
func (a *API) isMember(ctx context.Context, cid, uid string) error {
	if !chat.ValidID(cid) {
		return chat.Errorf(chat.CodeNotFound, "conversation not found")
	}
	if a.members.has(cid, uid) {
		return nil
	}
	m, err := a.store.Membership(ctx, cid, uid)
	if err != nil {
		if chat.IsNotFound(err) {
			return chat.Errorf(chat.CodeNotFound, "conversation not found")
		}
		return unavailable(err)
	}
	if !m.Active {
		return chat.Errorf(chat.CodeNotFound, "conversation not found")
	}
	a.members.add(cid, uid)
	return nil
}

// unavailable classifies a store failure as 503 unless already classified.
func unavailable(err error) error {
	if chat.ErrorCode(err) != chat.CodeInternal {
		return err
	}
	return &chat.Error{Code: chat.CodeUnavailable, Message: "storage is unavailable", Err: err}
}

// view is a conversation as the caller sees it (chat.Conversation.Public)
// with the caller's read state. m is the caller's membership, or nil to
// read it. Unread comes from the conversation's tally and the membership
// without reading messages; only a conversation stored before tallies
// existed, or one whose tally lost deletions since the caller's read,
// counts them from its messages.
func (a *API) view(ctx context.Context, c chat.Conversation, uid string, m *chat.Membership) chat.Conversation {
	if m == nil {
		if got, err := a.store.Membership(ctx, c.ID, uid); err == nil {
			m = &got
		} else {
			m = &chat.Membership{}
		}
	}
	c.ReadSeq = m.ReadSeq
	if n, ok := c.UnreadOf(m); ok {
		c.Unread = n
	} else if c.ReadSeq < c.LastSeq {
		msgs, _, err := a.store.Messages(ctx, c.ID, chat.MessagePage{After: c.ReadSeq, Forward: true, Limit: 200})
		if err == nil {
			for _, m := range msgs {
				if m.SenderID != uid && !m.Deleted {
					c.Unread++
				}
			}
		}
	}
	return c.Public()
}

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
		a.writeErr(w, r, unavailable(err))
		return
	}
	ms = slices.DeleteFunc(ms, func(m chat.Membership) bool { return !m.Active })
	settings, err := a.store.Settings(ctx, u.ID)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
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
		a.writeErr(w, r, unavailable(err))
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
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
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
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
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
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
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

// sendCommand validates a send and makes its command.
func (a *API) sendCommand(ctx context.Context, u chat.User, req httpx.SendRequest) (*chat.Command, error) {
	if ok, wait := a.limiter.allow(u.ID); !ok {
		return nil, &httpx.RateLimited{Wait: wait}
	}
	if err := a.isMember(ctx, req.ConversationID, u.ID); err != nil {
		return nil, err
	}
	if !chat.ValidClientID(req.ClientID) {
		return nil, chat.Errorf(chat.CodeInvalid, "client_id must be at most %d bytes", chat.MaxClientIDLen)
	}
	if len(req.Attachments) > chat.MaxAttachments {
		return nil, chat.Errorf(chat.CodeInvalid, "at most %d attachments", chat.MaxAttachments)
	}
	text, err := chat.CleanText(req.Text, len(req.Attachments) > 0)
	if err != nil {
		return nil, err
	}
	if err := a.checkUploads(ctx, u.ID, req.Attachments); err != nil {
		return nil, err
	}
	cmd := &chat.Command{Op: chat.OpSend, ConversationID: req.ConversationID, Actor: u.ID, ClientID: req.ClientID, Text: text, Attachments: req.Attachments}
	if req.ReplyTo != nil {
		if !chat.ValidID(*req.ReplyTo) {
			return nil, chat.Errorf(chat.CodeInvalid, "reply_to names no message of this conversation")
		}
		cmd.ReplyTo = *req.ReplyTo
	}
	return cmd, nil
}

// send validates and submits a send; created reports a new message.
func (a *API) send(ctx context.Context, u chat.User, req httpx.SendRequest) (*chat.Message, bool, error) {
	cmd, err := a.sendCommand(ctx, u, req)
	if err != nil {
		return nil, false, err
	}
	res, err := a.submit(ctx, cmd)
	if err != nil {
		return nil, false, err
	}
	a.sends.Inc()
	res.Message.Normalize()
	return res.Message, res.Created, nil
}

func (a *API) postMessage(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	var req httpx.SendRequest
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	req.ConversationID = r.PathValue("cid")
	if req.ClientID == "" {
		req.ClientID = r.Header.Get("Idempotency-Key")
	}
	msg, created, err := a.send(r.Context(), u, req)
	if err != nil {
		a.writeSendErr(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/conversations/"+msg.ConversationID+"/messages/"+msg.ID)
	}
	httpx.WriteJSON(w, status, msg)
}

func (a *API) writeSendErr(w http.ResponseWriter, r *http.Request, err error) {
	if rl, ok := err.(*httpx.RateLimited); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.Wait/time.Second)+1))
		a.writeCode(w, r, chat.CodeRateLimited, "too many messages; slow down")
		return
	}
	a.writeErr(w, r, err)
}

func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	q := r.URL.Query()
	var page chat.MessagePage
	var err error
	limit, err := httpx.IntParam(q, "limit", 50, 1, 200)
	if err == nil {
		page.Before, err = httpx.IntParam(q, "before", 0, 1, 1<<62)
	}
	if err == nil {
		page.After, err = httpx.IntParam(q, "after", 0, 0, 1<<62)
	}
	if err == nil && q.Has("before") && q.Has("after") {
		err = chat.Errorf(chat.CodeInvalid, "use before or after, not both")
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	page.Limit = int(limit)
	page.Forward = q.Has("after")
	msgs, more, err := a.store.Messages(r.Context(), cid, page)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	for i := range msgs {
		msgs[i].Normalize()
	}
	if msgs == nil {
		msgs = []chat.Message{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"messages": msgs, "has_more": more})
}

func (a *API) getMessage(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid, mid := r.PathValue("cid"), r.PathValue("mid")
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	m, err := a.store.Message(r.Context(), cid, mid)
	if err != nil {
		if chat.IsNotFound(err) {
			a.writeCode(w, r, chat.CodeNotFound, "message not found")
			return
		}
		a.writeErr(w, r, unavailable(err))
		return
	}
	m.Normalize()
	httpx.WriteJSON(w, http.StatusOK, m)
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	if _, err := a.member(r.Context(), cid, u.ID); err != nil {
		a.writeErr(w, r, err)
		return
	}
	q := r.URL.Query()
	after, err := httpx.IntParam(q, "after", 0, 0, 1<<62)
	var limit int64
	if err == nil {
		limit, err = httpx.IntParam(q, "limit", 200, 1, 1000)
	}
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	evs, err := a.store.Events(r.Context(), cid, after, int(limit)+1)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	more := len(evs) > int(limit)
	if more {
		evs = evs[:limit]
	}
	out := make([]httpx.RawJSON, 0, len(evs))
	for _, ev := range evs {
		out = append(out, httpx.RawJSON(append(fanout.EncodeEvent(ev), '}')))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"events": out, "has_more": more})
}

// messageCommand checks membership and the message id, then submits.
func (a *API) messageCommand(w http.ResponseWriter, r *http.Request, cmd *chat.Command) (chat.Result, bool) {
	u := httpx.User(r)
	cmd.ConversationID, cmd.MessageID, cmd.Actor = r.PathValue("cid"), r.PathValue("mid"), u.ID
	if _, err := a.member(r.Context(), cmd.ConversationID, u.ID); err != nil {
		a.writeErr(w, r, err)
		return chat.Result{}, false
	}
	if !chat.ValidID(cmd.MessageID) {
		a.writeCode(w, r, chat.CodeNotFound, "message not found")
		return chat.Result{}, false
	}
	res, err := a.submit(r.Context(), cmd)
	if err != nil {
		a.writeErr(w, r, err)
		return res, false
	}
	return res, true
}

func (a *API) editMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Text *string `json:"text"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Text == nil {
		a.writeCode(w, r, chat.CodeInvalid, "text is required")
		return
	}
	text, err := chat.CleanText(*req.Text, false)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	cmd := &chat.Command{Op: chat.OpEdit, Text: text}
	if im := strings.TrimSpace(r.Header.Get("If-Match")); im != "" {
		im = strings.TrimPrefix(im, "W/")
		v, err := strconv.Atoi(strings.Trim(im, `"`))
		if err != nil || v < 1 {
			a.writeCode(w, r, chat.CodeInvalid, "If-Match must be a message version number")
			return
		}
		cmd.IfMatch = v
	}
	res, ok := a.messageCommand(w, r, cmd)
	if !ok {
		return
	}
	res.Message.Normalize()
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(res.Message.Version)))
	httpx.WriteJSON(w, http.StatusOK, res.Message)
}

func (a *API) deleteMessage(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.messageCommand(w, r, &chat.Command{Op: chat.OpDelete}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) reaction(w http.ResponseWriter, r *http.Request, op string) {
	emoji := r.PathValue("emoji")
	if !chat.ValidEmoji(emoji) {
		a.writeCode(w, r, chat.CodeInvalid, "emoji must be 1-32 bytes")
		return
	}
	if _, ok := a.messageCommand(w, r, &chat.Command{Op: op, Emoji: emoji}); ok {
		w.WriteHeader(http.StatusNoContent)
	}
}

func (a *API) addReaction(w http.ResponseWriter, r *http.Request) { a.reaction(w, r, chat.OpReact) }
func (a *API) removeReaction(w http.ResponseWriter, r *http.Request) {
	a.reaction(w, r, chat.OpUnreact)
}

func (a *API) markRead(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	cid := r.PathValue("cid")
	var req struct {
		Seq *int64 `json:"seq"`
	}
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	if req.Seq == nil || *req.Seq < 0 {
		a.writeCode(w, r, chat.CodeInvalid, "seq must be a non-negative integer")
		return
	}
	if err := a.read(r.Context(), u, cid, *req.Seq); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) read(ctx context.Context, u chat.User, cid string, seq int64) error {
	if _, err := a.member(ctx, cid, u.ID); err != nil {
		return err
	}
	_, err := a.submit(ctx, &chat.Command{Op: chat.OpRead, ConversationID: cid, Actor: u.ID, Seq: seq})
	return err
}

func (a *API) typing(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	if err := a.sendTyping(r.Context(), u, r.PathValue("cid")); err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sendTyping emits an ephemeral typing event to the conversation's members.
func (a *API) sendTyping(ctx context.Context, u chat.User, cid string) error {
	c, err := a.member(ctx, cid, u.ID)
	if err != nil {
		return err
	}
	if ok, _ := a.typingRate.allow(u.ID); !ok {
		return chat.Errorf(chat.CodeRateLimited, "typing notifications are limited to 2 per second")
	}
	members, err := a.conversationMembers(ctx, &c)
	if err != nil {
		return err
	}
	a.presence.Broadcast(members, chat.Ephemeral{Type: chat.EventTyping, ConversationID: cid, UserID: u.ID})
	return nil
}
