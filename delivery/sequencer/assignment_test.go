package sequencer

import (
	"testing"

	"github.com/parleychat/parley/chat"
)

// TestPartitionBackFromAnotherOwnerIsReadAgain: a partition that went to
// another sequencer and came back in a later assignment of the group is
// taken again and its conversations read afresh, so a member the other
// owner added meanwhile can send (a refusal on the stale cached state
// would make no Commit for the epoch to fence).
func TestPartitionBackFromAnotherOwnerIsReadAgain(t *testing.T) {
	r := newRig(t)
	r.assignment = 1
	if out := r.apply(create("c1", "alice", "bob")); out[0].Result.ErrCode != "" {
		t.Fatalf("create: %+v", out[0].Result)
	}
	mine := r.seq
	r.seq, r.assignment = New(r.log, r.store, mine.logger), 2
	if out := r.apply(chat.Command{Op: chat.OpAddMember, ConversationID: "c1", Actor: "alice", UserID: "carol"}); out[0].Result.ErrCode != "" {
		t.Fatalf("add carol on the other owner: %+v", out[0].Result)
	}
	r.seq, r.assignment = mine, 3
	out := r.apply(send("c1", "carol", "hello", "k1"))
	if out[0].Result.ErrCode != "" {
		t.Fatalf("carol's send once the partition came back: %+v, want it applied", out[0].Result)
	}
}
