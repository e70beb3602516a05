package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/chat"
)

func TestTicketsAreSingleUseSignedAndExpire(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	tk, err := NewTickets(key)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tk.now = func() time.Time { return now }
	tokenExp := now.Add(time.Hour).Truncate(time.Second)
	ticket, exp, err := tk.Issue(chat.User{ID: "alice", Name: "Alice"}, tokenExp)
	if err != nil || !exp.Equal(now.Add(TicketTTL)) {
		t.Fatalf("Issue: %v, expires %v", err, exp)
	}
	// Another process with the same key accepts it once as well.
	other, _ := NewTickets(key)
	other.now = tk.now
	for _, x := range []*Tickets{tk, other} {
		u, te, err := x.Redeem(ticket)
		if err != nil || u != (chat.User{ID: "alice", Name: "Alice"}) || !te.Equal(tokenExp) {
			t.Fatalf("Redeem: %+v %v %v", u, te, err)
		}
		if _, _, err := x.Redeem(ticket); chat.ErrorCode(err) != chat.CodeUnauthorized {
			t.Errorf("second Redeem: %v, want unauthorized", err)
		}
	}
	fresh, _, _ := tk.Issue(chat.User{ID: "alice", Name: "Alice"}, tokenExp)
	wrongKey, _ := NewTickets([]byte(strings.Repeat("x", 32)))
	tampered := fresh[:len(fresh)-2] + "AA"
	for name, bad := range map[string]string{"unknown": "nonsense", "empty": "", "other key": fresh, "tampered": tampered, "a JWT": "eyJ.eyJ.sig"} {
		r := tk
		if name == "other key" {
			r = wrongKey
		}
		if _, _, err := r.Redeem(bad); chat.ErrorCode(err) != chat.CodeUnauthorized || strings.Contains(err.Error(), fresh) {
			t.Errorf("%s: %v, want unauthorized without the ticket in it", name, err)
		}
	}
	now = now.Add(TicketTTL)
	if _, _, err := tk.Redeem(fresh); chat.ErrorCode(err) != chat.CodeUnauthorized {
		t.Errorf("expired ticket: %v, want unauthorized", err)
	}
}

func TestTicketKeyNeedsASecret(t *testing.T) {
	v := mustOpen(t, Config{Secret: strings.Repeat("s", 32)})
	if k := v.TicketKey(); len(k) != 32 || string(k) == strings.Repeat("s", 32) {
		t.Errorf("TicketKey = %x", k)
	}
}

// BenchmarkTicketIssueAndRedeem is the CPU cost a realtime connect adds
// with a ticket (one Issue on POST /v1/tickets, one Redeem on connect).
func BenchmarkTicketIssueAndRedeem(b *testing.B) {
	tk, _ := NewTickets([]byte(strings.Repeat("k", 32)))
	u := chat.User{ID: "alice", Name: "Alice"}
	exp := time.Now().Add(time.Hour)
	for b.Loop() {
		ticket, _, err := tk.Issue(u, exp)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := tk.Redeem(ticket); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHS256 is the token verification a ticket replaces, for
// comparison.
func BenchmarkVerifyHS256(b *testing.B) {
	v, _ := Open(Config{Secret: strings.Repeat("s", 32)})
	tok, _ := v.Issue(chat.User{ID: "alice", Name: "Alice"}, time.Hour)
	for b.Loop() {
		if _, _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
