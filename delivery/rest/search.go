package rest

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
	"golang.org/x/sync/errgroup"
)

type searchResult struct {
	Message    chat.Message `json:"message"`
	Highlights []string     `json:"highlights"`
}

// hitReads is how many hits of a search page are read from the Store at
// once: read one after another, a page of 50 on Cassandra took 50 round
// trips (0.25-0.4 s a page under load).
const hitReads = 16

// hydrate reads each hit's message from the Store, which is the truth: a
// message deleted since it was indexed is never shown. Any other failure
// to read a hit answers unavailable: dropping it would pass an incomplete
// page off as the whole answer. The results keep the hits' order.
func hydrate(ctx context.Context, store chat.Store, hits []chat.SearchHit) ([]searchResult, error) {
	msgs := make([]*chat.Message, len(hits))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(hitReads)
	for i, h := range hits {
		g.Go(func() error {
			m, err := store.Message(ctx, h.ConversationID, h.MessageID)
			switch {
			case chat.IsNotFound(err):
				return nil
			case err != nil && chat.ErrorCode(err) != chat.CodeUnavailable:
				return &chat.Error{Code: chat.CodeUnavailable, Message: "storage is unavailable", Err: err}
			case err != nil:
				return err
			}
			if !m.Deleted {
				msgs[i] = &m
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	results := make([]searchResult, 0, len(hits))
	for i, m := range msgs {
		if m == nil {
			continue
		}
		m.Normalize()
		hl := hits[i].Highlights
		if hl == nil {
			hl = []string{}
		}
		results = append(results, searchResult{Message: *m, Highlights: hl})
	}
	return results, nil
}

// search answers GET /v1/search. The caller's memberships are read at query
// time and always passed as the filter; the query string is only ever
// matched against message text.
func (a *API) search(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	if a.index == nil {
		a.writeCode(w, r, chat.CodeUnavailable, "search is not configured")
		return
	}
	q := r.URL.Query()
	sq := chat.SearchQuery{Text: strings.TrimSpace(q.Get("q")), SenderID: q.Get("sender_id"), PageToken: q.Get("page_token")}
	limit, err := httpx.IntParam(q, "limit", 20, 1, 50)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	sq.Limit = int(limit)
	for name, dst := range map[string]*time.Time{"after": &sq.After, "before": &sq.Before} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				a.writeCode(w, r, chat.CodeInvalid, name+" must be an RFC 3339 time")
				return
			}
			*dst = t
		}
	}
	switch q.Get("has") {
	case "":
	case "attachment":
		sq.HasAttachment = true
	default:
		a.writeCode(w, r, chat.CodeInvalid, `has must be "attachment"`)
		return
	}
	if sq.SenderID != "" && !chat.ValidUserID(sq.SenderID) {
		a.writeCode(w, r, chat.CodeInvalid, "sender_id is not a valid user id")
		return
	}
	if len(sq.Text) > chat.MaxTextChars {
		a.writeCode(w, r, chat.CodeInvalid, "q is too long")
		return
	}
	ms, err := a.store.Memberships(r.Context(), u.ID)
	if err != nil {
		a.writeErr(w, r, err)
		return
	}
	want := q.Get("conversation_id")
	for _, m := range ms {
		if m.Active && (want == "" || m.ConversationID == want) {
			sq.ConversationIDs = append(sq.ConversationIDs, m.ConversationID)
		}
	}
	results := []searchResult{}
	var next *string
	if len(sq.ConversationIDs) > 0 {
		hits, token, err := a.index.Search(r.Context(), sq)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		results, err = hydrate(r.Context(), a.store, hits)
		if err != nil {
			a.writeErr(w, r, err)
			return
		}
		if token != "" {
			next = &token
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"results": results, "next_page_token": next})
}
