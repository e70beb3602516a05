package rest

import (
	"context"
	"net/http"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// submit appends cmd to the commands log and waits for its result
// (delivery/submit: "unavailable" only for a command that will never be
// applied).
func (a *API) submit(ctx context.Context, cmd *chat.Command) (chat.Result, error) {
	return a.submitter.Wait(ctx, cmd)
}

// messageOf is the message of a command's result, normalized for the API.
// A result without one (a sequencer bug, or a replay that found nothing to
// answer with) is answered unavailable, so the client retries with its
// client_id, instead of taking the gateway down.
func messageOf(res chat.Result) (*chat.Message, error) {
	if res.Message == nil {
		return nil, &chat.Error{Code: chat.CodeUnavailable, Op: "rest: result", Message: "the command's result carries no message; retry"}
	}
	res.Message.Normalize()
	return res.Message, nil
}

// member loads a conversation the caller belongs to; 404 otherwise, so
// non-members cannot learn that it exists.
func (a *API) member(ctx context.Context, cid, uid string) (chat.Conversation, error) {
	c, _, err := a.membership(ctx, cid, uid)
	return c, err
}

// requireMember reports whether the request's user is a member of cid,
// having written the error response (member's 404 or the store's error)
// when not: the first step of every handler under a conversation.
func (a *API) requireMember(w http.ResponseWriter, r *http.Request, cid string) bool {
	if _, err := a.member(r.Context(), cid, httpx.User(r).ID); err != nil {
		a.writeErr(w, r, err)
		return false
	}
	return true
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
		return chat.Conversation{}, m, err
	}
	if !m.Active {
		return chat.Conversation{}, m, notFound
	}
	c, err := a.store.Conversation(ctx, cid)
	if err != nil {
		if chat.IsNotFound(err) {
			return c, m, notFound
		}
		return c, m, err
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
		return err
	}
	if !m.Active {
		return chat.Errorf(chat.CodeNotFound, "conversation not found")
	}
	a.members.add(cid, uid)
	return nil
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
