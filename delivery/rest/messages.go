package rest

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/fanout"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/tracing"
)

// sendCommand validates a send and makes its command.
func (a *API) sendCommand(ctx context.Context, u chat.User, req httpx.SendRequest) (*chat.Command, error) {
	if ok, wait := a.limiter.allow(u.ID); !ok {
		a.metrics.rateLimited.WithLabelValues("send").Inc()
		return nil, chat.RateLimited("too many messages; slow down", wait)
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
	m, err := messageOf(res)
	if err != nil {
		return nil, false, err
	}
	a.sends.Inc()
	return m, res.Created, nil
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
	start := time.Now()
	ctx, span := startSend(tracing.Extract(r.Context(), r.Header.Get("traceparent")), "rest")
	msg, created, err := a.send(ctx, u, req)
	a.metrics.sent("rest", start, err)
	endSend(span, err)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		w.Header().Set("Location", "/v1/conversations/"+msg.ConversationID+"/messages/"+msg.ID)
	}
	httpx.WriteJSON(w, status, msg)
}

func (a *API) listMessages(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("cid")
	if !a.requireMember(w, r, cid) {
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
		a.writeErr(w, r, err)
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
	cid, mid := r.PathValue("cid"), r.PathValue("mid")
	if !a.requireMember(w, r, cid) {
		return
	}
	m, err := a.store.Message(r.Context(), cid, mid)
	if err != nil {
		if chat.IsNotFound(err) {
			a.writeCode(w, r, chat.CodeNotFound, "message not found")
			return
		}
		a.writeErr(w, r, err)
		return
	}
	m.Normalize()
	httpx.WriteJSON(w, http.StatusOK, m)
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	cid := r.PathValue("cid")
	if !a.requireMember(w, r, cid) {
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
		a.writeErr(w, r, err)
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
	if !a.requireMember(w, r, cmd.ConversationID) {
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
	m, err := messageOf(res)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(m.Version)))
	httpx.WriteJSON(w, http.StatusOK, m)
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
		a.metrics.rateLimited.WithLabelValues("typing").Inc()
		return chat.Errorf(chat.CodeRateLimited, "typing notifications are limited to 2 per second")
	}
	members, err := a.conversationMembers(ctx, &c)
	if err != nil {
		return err
	}
	a.presence.Broadcast(members, chat.Ephemeral{Type: chat.EventTyping, ConversationID: cid, UserID: u.ID})
	return nil
}
