package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

// membershipsFail is a store whose Memberships fails with err.
type membershipsFail struct {
	chat.Store
	err error
}

func (s membershipsFail) Memberships(context.Context, string) ([]chat.Membership, error) {
	return nil, s.err
}

// TestStoreErrorsAnswerAsTheAdapterClassifiedThem: the gateway answers a
// store failure with the code the adapter gave it (and the Retry-After it
// carries), without classifying it again: an unclassified failure is a
// 500, a bug to fix at the adapter's edge, not a 503 by guess.
func TestStoreErrorsAnswerAsTheAdapterClassifiedThem(t *testing.T) {
	lg, st, v, logger := testEngines(t)
	tok, _ := v.Issue(chat.User{ID: "alice"}, time.Hour)
	for _, tc := range []struct {
		name       string
		err        error
		status     int
		retryAfter string
	}{
		{"unavailable with its own wait", &chat.Error{Code: chat.CodeUnavailable, Op: "store: memberships", RetryAfter: 5 * time.Second}, 503, "5"},
		{"unavailable with the default wait", chat.ContextError("store: memberships", context.DeadlineExceeded), 503, "2"},
		{"unclassified", errors.New("store: memberships: disk on fire"), 500, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{MaxConnsPerUser: 5, SendRate: 100, SendBurst: 100, QueueSize: 64, CommandTimeout: 3 * time.Second}
			g := New(cfg, Deps{Log: lg, Store: membershipsFail{st, tc.err}, Verifier: v, Logger: logger})
			srv := httptest.NewServer(g.Handler())
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/v1/conversations", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.status || res.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("answered %d with Retry-After %q, want %d with %q", res.StatusCode, res.Header.Get("Retry-After"), tc.status, tc.retryAfter)
			}
		})
	}
}
