package chat

import "fmt"

// Check refuses a change that is not self-consistent: events of its
// conversation with seqs PrevSeq+1… and growing positions, and every
// message, membership and dedup record of that conversation. Besides
// catching bugs, it keeps every row a store writes for a change inside the
// conversation whose fencing the Commit holds.
func (ch *Change) Check() error {
	cid := ch.Conversation.ID
	if cid == "" {
		return fmt.Errorf("conversation id is empty")
	}
	if ch.PrevSeq < 0 {
		return fmt.Errorf("prev_seq %d is negative", ch.PrevSeq)
	}
	if want := ch.PrevSeq + int64(len(ch.Events)); ch.Conversation.LastSeq != want {
		return fmt.Errorf("conversation last_seq is %d, want prev_seq + events = %d", ch.Conversation.LastSeq, want)
	}
	var prevPos int64
	for i := range ch.Events {
		ev := &ch.Events[i]
		switch {
		case ev.ConversationID != cid:
			return fmt.Errorf("event %d belongs to conversation %q", i, ev.ConversationID)
		case ev.Seq != ch.PrevSeq+1+int64(i):
			return fmt.Errorf("event %d has seq %d, want %d", i, ev.Seq, ch.PrevSeq+1+int64(i))
		case ev.Position <= prevPos:
			return fmt.Errorf("event %d has position %d, not above %d", i, ev.Position, prevPos)
		case ev.Message != nil && ev.Message.ID == "":
			return fmt.Errorf("event %d carries a message without id", i)
		}
		prevPos = ev.Position
	}
	for i := range ch.Messages {
		m := &ch.Messages[i]
		if m.ConversationID != cid || m.ID == "" || m.Seq <= 0 {
			return fmt.Errorf("message %d (%q of %q, seq %d) is not a message of this conversation", i, m.ID, m.ConversationID, m.Seq)
		}
	}
	for i := range ch.Memberships {
		m := &ch.Memberships[i]
		if m.ConversationID != cid || m.UserID == "" {
			return fmt.Errorf("membership %d (%q in %q) is not a membership of this conversation", i, m.UserID, m.ConversationID)
		}
	}
	for i := range ch.Dedups {
		d := &ch.Dedups[i]
		if d.ConversationID != cid || d.MessageID == "" {
			return fmt.Errorf("dedup %d (%q in %q) is not a record of this conversation", i, d.MessageID, d.ConversationID)
		}
	}
	for i := range ch.Attachments {
		if ch.Attachments[i].ID == "" {
			return fmt.Errorf("attachment %d has no id", i)
		}
	}
	return nil
}

// MemberMoves lists the users whose membership this change starts (active,
// joined at one of its events) and ends (left at one of its events), so a
// store can keep a conversation's member rows without writing them again
// for every other membership update (a read position, say).
func (ch *Change) MemberMoves() (joined, left []string) {
	if len(ch.Events) == 0 {
		return nil, nil
	}
	lo, hi := ch.Events[0].Position, ch.Events[len(ch.Events)-1].Position
	for i := range ch.Memberships {
		m := &ch.Memberships[i]
		switch {
		case m.Active && m.JoinedPosition >= lo && m.JoinedPosition <= hi:
			joined = append(joined, m.UserID)
		case !m.Active && m.LeftPosition >= lo && m.LeftPosition <= hi:
			left = append(left, m.UserID)
		}
	}
	return joined, left
}
