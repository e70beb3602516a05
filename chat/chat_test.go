package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	cases := []map[int]int64{
		{},
		{0: 256},
		{3: 1 << 40, 63: 999, 10: 257},
	}
	for _, pos := range cases {
		c := Cursor{Deployment: 0xdeadbeef, Positions: pos}
		enc := c.Encode()
		if len(enc) > MaxCursorLen {
			t.Fatalf("cursor too long: %d", len(enc))
		}
		got, err := DecodeCursor(enc, 0xdeadbeef, 64)
		if err != nil {
			t.Fatalf("decode %q: %v", enc, err)
		}
		for p, v := range pos {
			if got.Positions[p] != v {
				t.Fatalf("partition %d: %d, want %d", p, got.Positions[p], v)
			}
		}
		if len(got.Positions) != len(pos) {
			t.Fatalf("got %v want %v", got.Positions, pos)
		}
	}
}

func TestFullCursorFitsTheLimit(t *testing.T) {
	c := NewCursor(1)
	for p := 0; p < DefaultPartitions; p++ {
		c.Positions[p] = 1 << 55
	}
	if n := len(c.Encode()); n > MaxCursorLen {
		t.Fatalf("a cursor over all %d partitions is %d bytes", DefaultPartitions, n)
	}
}

func TestForeignOrBrokenCursorIsExpired(t *testing.T) {
	good := Cursor{Deployment: 7, Positions: map[int]int64{5: 300}}.Encode()
	for name, s := range map[string]string{
		"other deployment":  Cursor{Deployment: 8, Positions: map[int]int64{5: 300}}.Encode(),
		"garbage":           "!!!",
		"truncated":         good[:len(good)-1],
		"too long":          strings.Repeat("A", MaxCursorLen+1),
		"partition too big": Cursor{Deployment: 7, Positions: map[int]int64{100: 1}}.Encode(),
	} {
		if _, err := DecodeCursor(s, 7, 64); ErrorCode(err) != CodeCursorExpired {
			t.Errorf("%s: err %v, want cursor_expired", name, err)
		}
	}
}

func TestIDsSortByCreation(t *testing.T) {
	ids := make([]string, 2000)
	for i := range ids {
		ids[i] = NewID("msg")
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids made in sequence do not sort in sequence")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] || !ValidID(id) {
			t.Fatalf("duplicate or invalid id %q", id)
		}
		seen[id] = true
	}
}

func TestDirectConversationIDIsPerPair(t *testing.T) {
	if DirectConversationID("a", "b") != DirectConversationID("b", "a") {
		t.Fatal("direct id depends on order")
	}
	if DirectConversationID("a", "b") == DirectConversationID("a", "c") {
		t.Fatal("different pairs share an id")
	}
	if !ValidID(DirectConversationID("alice@x", "bob.y")) {
		t.Fatal("direct id is not a valid id")
	}
}

func TestPositionsGrowAndStartAboveZero(t *testing.T) {
	if Position(0, 0) <= 0 {
		t.Fatal("position 0 would read as 'nothing delivered'")
	}
	if !(Position(0, 255) < Position(1, 0)) {
		t.Fatal("events of a later command must sort after an earlier command's")
	}
}

func TestValidation(t *testing.T) {
	for s, want := range map[string]bool{"alice": true, "a.b_c@d-e": true, "": false, "a b": false, "ä": false, strings.Repeat("a", 65): false, strings.Repeat("a", 64): true} {
		if ValidUserID(s) != want {
			t.Errorf("ValidUserID(%q) = %v", s, !want)
		}
	}
	if _, err := CleanText(strings.Repeat("😀", 4000), false); err != nil {
		t.Errorf("4000 emoji must be allowed: %v", err)
	}
	if _, err := CleanText(strings.Repeat("😀", 4001), false); ErrorCode(err) != CodeInvalid {
		t.Errorf("4001 chars must be refused")
	}
	if _, err := CleanText(" \n ", false); ErrorCode(err) != CodeInvalid {
		t.Errorf("blank text must be refused")
	}
	if got, _ := CleanText("  hi  ", false); got != "hi" {
		t.Errorf("text is trimmed, got %q", got)
	}
	if PartitionOf("cnv_x", 64) != PartitionOf("cnv_x", 64) || PartitionOf("cnv_x", 1) != 0 {
		t.Error("PartitionOf is not stable")
	}
}

func TestUnreadOfCountsMessagesAfterTheReadPositionLessDeletions(t *testing.T) {
	dels := func(ds ...Deletion) []Deletion { return ds }
	cases := []struct {
		name   string
		tally  *Tally
		m      Membership
		want   int64
		wantOK bool
	}{
		{"no tally (stored before tallies)", nil, Membership{}, 0, false},
		{"nothing read", &Tally{Messages: 5}, Membership{ReadAt: 1}, 5, true},
		{"read all", &Tally{Messages: 5}, Membership{ReadSeq: 9, ReadCount: 5, ReadAt: 9}, 0, true},
		{"deleted before the read counts nothing", &Tally{Messages: 5, Deleted: 1, Deletions: dels(Deletion{At: 12, Seq: 3})},
			Membership{ReadSeq: 6, ReadCount: 3, ReadAt: 8}, 2, true},
		{"deleted after the read counts off", &Tally{Messages: 5, Deleted: 1, Deletions: dels(Deletion{At: 12, Seq: 7})},
			Membership{ReadSeq: 6, ReadCount: 3, ReadAt: 8}, 1, true},
		{"deleted before the read was taken in ReadDeleted", &Tally{Messages: 5, Deleted: 1, Deletions: dels(Deletion{At: 7, Seq: 7})},
			Membership{ReadSeq: 6, ReadCount: 3, ReadDeleted: 1, ReadAt: 8}, 1, true},
		{"dropped deletions older than the read are not needed", &Tally{Messages: 5, Deleted: 3, Deletions: dels(Deletion{At: 9, Seq: 7})},
			Membership{ReadSeq: 6, ReadCount: 3, ReadAt: 9}, 2, true},
		{"dropped deletions newer than the read cannot be told", &Tally{Messages: 5, Deleted: 3, Deletions: dels(Deletion{At: 12, Seq: 7})},
			Membership{ReadSeq: 6, ReadCount: 3, ReadAt: 8}, 0, false},
		{"never negative", &Tally{Messages: 1}, Membership{ReadCount: 3}, 0, true},
	}
	for _, tc := range cases {
		c := Conversation{Tally: tc.tally}
		got, ok := c.UnreadOf(&tc.m)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: UnreadOf = %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestPublicListsMembersOnlyUpTo256AndHidesTheTally(t *testing.T) {
	members := make([]string, MaxListedMembers+1)
	for i := range members {
		members[i] = fmt.Sprint("u", i)
	}
	c := Conversation{Members: members[:MaxListedMembers], MemberCount: MaxListedMembers, Tally: &Tally{Messages: 1}}
	if p := c.Public(); len(p.Members) != MaxListedMembers || p.Tally != nil {
		t.Errorf("256 members: %d listed, tally %v", len(p.Members), p.Tally)
	}
	c.Members, c.MemberCount = members, len(members)
	b, _ := json.Marshal(c.Public())
	if strings.Contains(string(b), `"members"`) || strings.Contains(string(b), `"tally"`) || !strings.Contains(string(b), `"member_count":257`) {
		t.Errorf("257 members: %s", b)
	}
	if p := (Conversation{Members: []string{"a", "b"}}).Public(); p.MemberCount != 2 {
		t.Errorf("stored before member_count: member_count %d, want 2", p.MemberCount)
	}
	if p := (Conversation{}).Public(); p.Members == nil {
		t.Error("no members: members is null, want []")
	}
}

func TestEveryCodeHasOneDisposition(t *testing.T) {
	seen := map[int]string{}
	for _, code := range Codes() {
		d := DispositionOf(code)
		if d.HTTPStatus < 400 || d.HTTPStatus > 599 {
			t.Errorf("%s: HTTP status %d is no error status", code, d.HTTPStatus)
		}
		if other, ok := seen[d.HTTPStatus]; ok {
			t.Errorf("%s and %s share HTTP status %d", code, other, d.HTTPStatus)
		}
		seen[d.HTTPStatus] = code
	}
	if d := DispositionOf("no_such_code"); d != DispositionOf(CodeInternal) {
		t.Errorf("an unknown code is %+v, want internal's %+v", d, DispositionOf(CodeInternal))
	}
}

func TestRetryAfterComesFromTheErrorOrTheCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{RateLimited("slow down", 2500*time.Millisecond), 3},
		{&Error{Code: CodeRateLimited}, 1},
		{&Error{Code: CodeUnavailable, Err: errors.New("down")}, 2},
		{fmt.Errorf("wrapped: %w", &Error{Code: CodeUnavailable, RetryAfter: 5 * time.Second}), 5},
		{&Error{Code: CodeInvalid}, 0},
		{errors.New("plain"), 0},
	} {
		if got := RetryAfterSeconds(tc.err); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestContextErrorIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := ErrorCode(ContextError("op", ctx.Err())); got != CodeUnavailable {
		t.Errorf("cancelled: %s, want unavailable", got)
	}
	if got := ErrorCode(ContextError("op", fmt.Errorf("x: %w", context.DeadlineExceeded))); got != CodeUnavailable {
		t.Errorf("deadline: %s, want unavailable", got)
	}
	other := errors.New("disk full")
	if got := ContextError("op", other); got != other {
		t.Errorf("another error became %v", got)
	}
}

// TestInternalFieldsHaveNoJSONName: the API's JSON of an event or a
// conversation never carries the internal fields, whatever their values
// (nobody has to zero them before encoding for clients); the stored and
// logged forms in package record keep them.
func TestInternalFieldsHaveNoJSONName(t *testing.T) {
	ev := Event{Type: EventMessageCreated, Partition: 3, Position: 259,
		Conversation: &Conversation{ID: "cnv_1", Tally: &Tally{Messages: 1}, LastPosition: 259}}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"partition"`, `"position"`, `"tally"`, `"last_position"`, `"last_activity"`, "259"} {
		if strings.Contains(string(b), name) {
			t.Errorf("the API's JSON of an event carries %s: %s", name, b)
		}
	}
}
