package sequencer

import (
	"context"
	"fmt"
	"testing"

	"github.com/parleychat/parley/chat"
)

// TestBigConversationStateLeavesMembersToTheirRows: above 256 members the
// stored conversation state holds no member list, yet every send still
// reaches every member, a member who left is refused, and a sequencer
// that did not make the latest change (a new owner after a rebalance)
// reads the members from the store rather than trusting its cache.
func TestBigConversationStateLeavesMembersToTheirRows(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()
	var others []string
	for i := range chat.MaxCreateMembers - 1 {
		others = append(others, fmt.Sprintf("u%03d", i))
	}
	r.apply(create("big", "alice", others...))
	adds := []chat.Command{}
	for _, u := range []string{"zoe", "zed"} {
		adds = append(adds, chat.Command{Op: chat.OpAddMember, ConversationID: "big", Actor: "alice", UserID: u})
	}
	r.apply(adds...)
	c, err := r.store.Conversation(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if c.Members != nil || c.MemberCount != 257 {
		t.Fatalf("stored state of 257 members: %d listed, member_count %d", len(c.Members), c.MemberCount)
	}

	out := r.apply(send("big", "zed", "hello everyone", ""))
	if out[0].Result.ErrCode != "" || len(out[0].Recipients) != 257 {
		t.Fatalf("send: %+v, %d recipients, want 257", out[0].Result, len(out[0].Recipients))
	}

	// Another sequencer (the partition's new owner) removes u007; ours
	// must not trust its cached members after that.
	other := New(r.log, r.store, r.seq.logger)
	mine := r.seq
	r.seq = other
	r.apply(chat.Command{Op: chat.OpRemoveMember, ConversationID: "big", Actor: "u007", UserID: "u007"})
	r.seq = mine
	// The partition comes back to ours: it takes it again (a new epoch),
	// as it does after a rebalance or a fenced Commit.
	for p := range r.log.Partitions() {
		mine.forget(p)
	}
	out = r.apply(send("big", "u007", "still here?", ""), send("big", "u008", "bye u007", ""))
	if out[0].Result.ErrCode != chat.CodeNotFound {
		t.Errorf("send by a member who left: %+v, want not_found", out[0].Result)
	}
	if out[1].Result.ErrCode != "" || len(out[1].Recipients) != 256 {
		t.Errorf("send after a removal: %+v, %d recipients, want 256", out[1].Result, len(out[1].Recipients))
	}
	// Back at 256, the state lists its members again.
	if c, _ := r.store.Conversation(ctx, "big"); len(c.Members) != 256 || c.MemberCount != 256 || c.HasMember("u007") {
		t.Errorf("stored state at 256 members: %d listed, member_count %d", len(c.Members), c.MemberCount)
	}
}
