package rest

import (
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

type searchResult struct {
	Message    chat.Message `json:"message"`
	Highlights []string     `json:"highlights"`
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
		a.writeErr(w, r, unavailable(err))
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
			if chat.ErrorCode(err) == chat.CodeInvalid {
				a.writeErr(w, r, err)
				return
			}
			a.writeErr(w, r, unavailable(err))
			return
		}
		for _, h := range hits {
			// The store is the truth: a message deleted since it was
			// indexed is never shown. Any other failure to read a hit
			// answers 503: dropping it would pass an incomplete page off
			// as the whole answer.
			m, err := a.store.Message(r.Context(), h.ConversationID, h.MessageID)
			if chat.IsNotFound(err) {
				continue
			}
			if err != nil {
				if chat.ErrorCode(err) != chat.CodeUnavailable {
					err = &chat.Error{Code: chat.CodeUnavailable, Message: "storage is unavailable", Err: err}
				}
				a.writeErr(w, r, err)
				return
			}
			if m.Deleted {
				continue
			}
			m.Normalize()
			hl := h.Highlights
			if hl == nil {
				hl = []string{}
			}
			results = append(results, searchResult{Message: m, Highlights: hl})
		}
		if token != "" {
			next = &token
		}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"results": results, "next_page_token": next})
}
