package sequencer

import (
	"slices"
	"time"

	"github.com/parleychat/parley/chat"
)

// applier applies one command to one conversation's state.
type applier struct {
	b       *batch
	st      *convState
	cmd     *chat.Command
	offset  int64
	at      time.Time
	change  chat.Change
	removed string // a user removed by this command, who still hears of it
}

func (a *applier) run() (*chat.Sequenced, error) {
	cmd := a.cmd
	a.change.PrevSeq = a.st.conv.LastSeq
	if cmd.Op == chat.OpCreate {
		return a.create()
	}
	if !a.st.exists || (!a.st.members[cmd.Actor] && cmd.Op != chat.OpThumbnail) {
		return failed(cmd, chat.CodeNotFound, "conversation not found"), nil
	}
	switch cmd.Op {
	case chat.OpSend:
		return a.send()
	case chat.OpEdit:
		return a.edit()
	case chat.OpDelete:
		return a.delete()
	case chat.OpReact, chat.OpUnreact:
		return a.react()
	case chat.OpRead:
		return a.read()
	case chat.OpRename:
		return a.rename()
	case chat.OpAddMember:
		return a.addMember()
	case chat.OpRemoveMember:
		return a.removeMember()
	case chat.OpThumbnail:
		return a.thumbnail()
	}
	return failed(cmd, chat.CodeInvalid, "unknown operation %q", cmd.Op), nil
}

func (a *applier) ok() *chat.Sequenced {
	return &chat.Sequenced{CommandID: a.cmd.ID, Gateway: a.cmd.Gateway}
}

// emit appends the next durable event of the conversation.
func (a *applier) emit(ev chat.Event) {
	c := &a.st.conv
	c.LastSeq++
	ev.ConversationID = c.ID
	ev.Seq = c.LastSeq
	ev.EventID = chat.NewID("evt")
	ev.At = a.at
	ev.Actor = a.cmd.Actor
	ev.Partition = a.b.partition
	ev.Position = chat.Position(a.offset, len(a.change.Events))
	c.LastPosition = ev.Position
	c.LastActivity = a.at
	a.change.Events = append(a.change.Events, ev)
}

func (a *applier) putMessage(m *chat.Message) {
	a.st.messages[m.ID] = m
	if last := a.st.conv.LastMessage; last == nil || m.Seq >= last.Seq {
		mc := *m
		a.st.conv.LastMessage = &mc
	}
	for i := range a.change.Messages {
		if a.change.Messages[i].ID == m.ID {
			a.change.Messages[i] = *m
			return
		}
	}
	a.change.Messages = append(a.change.Messages, *m)
}

func (a *applier) putMembership(m *chat.Membership) {
	for i := range a.change.Memberships {
		if a.change.Memberships[i].UserID == m.UserID {
			a.change.Memberships[i] = *m
			return
		}
	}
	a.change.Memberships = append(a.change.Memberships, *m)
}

func (a *applier) recipients() []string {
	r := make(map[string]bool, len(a.st.members)+1)
	for m := range a.st.members {
		r[m] = true
	}
	if a.removed != "" {
		r[a.removed] = true
	}
	return sortedKeys(r)
}

// conversationSnapshot is the conversation's state for a command's result
// (the gateway makes each caller's view of it).
func (a *applier) conversationSnapshot() *chat.Conversation {
	c := a.st.conv
	c.Members = slices.Clone(c.Members)
	return &c
}

// publicSnapshot is the conversation as events carry it: the shape of
// every REST answer (chat.Conversation.Public), without a caller's read
// state.
func (a *applier) publicSnapshot() *chat.Conversation {
	c := a.conversationSnapshot().Public()
	return &c
}

// tally returns a copy of the conversation's tally to change, or nil for a
// conversation stored before tallies existed (its unread counts are
// computed from its messages). A copy, because earlier changes and
// snapshots of the batch share the old one.
func (a *applier) tally() *chat.Tally {
	if a.st.conv.Tally == nil {
		return nil
	}
	t := *a.st.conv.Tally
	a.st.conv.Tally = &t
	return &t
}

// joined starts the unread count of a membership that had no read
// position: every message so far, less those deleted.
func (a *applier) joined(ms *chat.Membership) {
	if ms.ReadSeq != 0 || ms.ReadAt != 0 {
		return // a rejoin keeps its read position
	}
	ms.ReadAt = a.st.conv.LastSeq
	if t := a.st.conv.Tally; t != nil {
		ms.ReadDeleted = t.Deleted
	}
}

// advanceRead moves uid's read position to seq, with the counts behind its
// unread number. Messages after seq that this batch has not committed yet
// are in st.messages, which also holds the batch's newer state of stored
// ones.
func (a *applier) advanceRead(ms *chat.Membership, seq int64) error {
	ms.ReadSeq = seq
	ms.ReadAt = a.st.conv.LastSeq
	t := a.st.conv.Tally
	if t == nil {
		return nil
	}
	if seq >= a.st.conv.LastSeq {
		ms.ReadCount, ms.ReadDeleted = t.Messages, 0
		return nil
	}
	after := map[string]bool{} // message id -> deleted
	for page := (chat.MessagePage{After: seq, Forward: true, Limit: 200}); ; {
		msgs, more, err := a.b.s.store.Messages(a.b.ctx, a.st.conv.ID, page)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			after[m.ID] = m.Deleted
		}
		if !more || len(msgs) == 0 {
			break
		}
		page.After = msgs[len(msgs)-1].Seq
	}
	for id, m := range a.st.messages {
		if m.Seq > seq {
			after[id] = m.Deleted
		}
	}
	ms.ReadCount, ms.ReadDeleted = t.Messages-int64(len(after)), 0
	for _, deleted := range after {
		if deleted {
			ms.ReadDeleted++
		}
	}
	return nil
}

func (a *applier) create() (*chat.Sequenced, error) {
	cmd := a.cmd
	if a.st.exists {
		if a.st.conv.Kind == chat.KindDirect && a.st.members[cmd.Actor] {
			out := a.ok()
			out.Result.Conversation = a.conversationSnapshot()
			return out, nil
		}
		return failed(cmd, chat.CodeConflict, "conversation already exists"), nil
	}
	members := []string{cmd.Actor}
	for _, m := range cmd.Members {
		if !slices.Contains(members, m) {
			members = append(members, m)
		}
	}
	if cmd.Kind == chat.KindDirect && len(members) != 2 {
		return failed(cmd, chat.CodeInvalid, "a direct conversation has exactly two members"), nil
	}
	if len(members) > chat.MaxCreateMembers {
		return failed(cmd, chat.CodeInvalid, "at most %d members at creation", chat.MaxCreateMembers), nil
	}
	title := ""
	if cmd.Title != nil {
		title = *cmd.Title
	}
	a.st.conv = chat.Conversation{ID: cmd.ConversationID, Kind: cmd.Kind, Title: title, CreatedBy: cmd.Actor, CreatedAt: a.at, Tally: &chat.Tally{}}
	a.st.exists = true
	for _, m := range members {
		a.st.conv.Members = append(a.st.conv.Members, m)
		a.st.members[m] = true
	}
	a.st.conv.MemberCount = len(a.st.conv.Members)
	for _, m := range members {
		a.emit(chat.Event{Type: chat.EventMemberAdded, UserID: m})
		// The conversation does not exist, so neither does a membership
		// row of it (only its own Commits write them, with its state):
		// no member's row is read from the Store.
		ms, ok := a.st.mships[m]
		if !ok {
			ms = &chat.Membership{ConversationID: a.st.conv.ID, UserID: m}
			a.st.mships[m] = ms
		}
		ms.Active, ms.JoinedPosition, ms.LeftPosition = true, a.st.conv.LastPosition, 0
		a.joined(ms)
		a.putMembership(ms)
	}
	pub := a.publicSnapshot()
	for i := range a.change.Events {
		a.change.Events[i].Conversation = pub
	}
	out := a.ok()
	out.Result.Created = true
	out.Result.Conversation = a.conversationSnapshot()
	return out, nil
}

func (a *applier) send() (*chat.Sequenced, error) {
	cmd := a.cmd
	st := a.st
	if cmd.ClientID != "" {
		key := cmd.Actor + "\x00" + cmd.ClientID
		mid, ok := st.dedups[key]
		if !ok && st.knows(cmd.Actor) {
			// Every dedup record of the conversation is known: no read.
			mid, ok = st.knownDedups[key]
		} else if !ok {
			mid, ok = a.b.prefetched[dedupKey(st.conv.ID, cmd.Actor, cmd.ClientID)]
			ok = ok && mid != ""
		}
		if !ok && !st.knows(cmd.Actor) && !a.b.hasPrefetched(st.conv.ID, cmd.Actor, cmd.ClientID) {
			var err error
			mid, err = a.b.s.store.Dedup(a.b.ctx, st.conv.ID, cmd.Actor, cmd.ClientID)
			if isStorageErr(err) {
				return nil, err
			}
			ok = err == nil
		}
		if ok {
			m, err := a.b.message(st, mid)
			if isStorageErr(err) {
				return nil, err
			}
			if err == nil {
				out := a.ok()
				mc := *m
				out.Result.Message = &mc
				return out, nil
			}
		}
	}
	var replyTo *string
	if cmd.ReplyTo != "" {
		m, err := a.b.message(st, cmd.ReplyTo)
		if isStorageErr(err) {
			return nil, err
		}
		if err != nil {
			return failed(cmd, chat.CodeInvalid, "reply_to names no message of this conversation"), nil
		}
		id := m.ID
		replyTo = &id
	}
	var atts []chat.Attachment
	var recs []chat.AttachmentRecord
	for _, id := range cmd.Attachments {
		a, err := a.b.s.store.Attachment(a.b.ctx, id)
		if isStorageErr(err) {
			return nil, err
		}
		// An attachment is posted once, by its uploader.
		if err != nil || a.UploaderID != cmd.Actor || a.ConversationID != "" || slicesContainsID(recs, id) {
			return failed(cmd, chat.CodeInvalid, "unknown attachment %q", id), nil
		}
		recs = append(recs, a)
		atts = append(atts, a.Attachment)
	}
	msg := &chat.Message{
		ID:             chat.NewID("msg"),
		ConversationID: st.conv.ID,
		Seq:            st.conv.LastSeq + 1,
		SenderID:       cmd.Actor,
		ClientID:       cmd.ClientID,
		Text:           cmd.Text,
		Attachments:    atts,
		ReplyTo:        replyTo,
		CreatedAt:      a.at,
		Version:        1,
	}
	msg.Normalize()
	for i := range recs {
		recs[i].ConversationID, recs[i].MessageID = st.conv.ID, msg.ID
	}
	a.change.Attachments = append(a.change.Attachments, recs...)
	if t := a.tally(); t != nil {
		t.Messages++
	}
	a.putMessage(msg)
	mc := *msg
	a.emit(chat.Event{Type: chat.EventMessageCreated, Message: &mc})
	// A sender has read what it answers: its read position moves to its
	// own message (no read.updated; the message.created says as much).
	ms, err := a.b.membership(st, cmd.Actor)
	if err != nil {
		return nil, err
	}
	if err := a.advanceRead(ms, msg.Seq); err != nil {
		return nil, err
	}
	a.putMembership(ms)
	if cmd.ClientID != "" {
		st.dedups[cmd.Actor+"\x00"+cmd.ClientID] = msg.ID
		a.change.Dedups = append(a.change.Dedups, chat.Dedup{ConversationID: st.conv.ID, SenderID: cmd.Actor, ClientID: cmd.ClientID, MessageID: msg.ID})
	}
	out := a.ok()
	out.Result.Created = true
	out.Result.Message = &mc
	return out, nil
}

// liveMessage loads a message that must exist and not be deleted.
func (a *applier) liveMessage() (*chat.Message, *chat.Sequenced, error) {
	m, err := a.b.message(a.st, a.cmd.MessageID)
	if isStorageErr(err) {
		return nil, nil, err
	}
	if err != nil || m.Deleted {
		return nil, failed(a.cmd, chat.CodeNotFound, "message not found"), nil
	}
	return m, nil, nil
}

func slicesContainsID(recs []chat.AttachmentRecord, id string) bool {
	for _, r := range recs {
		if r.ID == id {
			return true
		}
	}
	return false
}

// thumbnail records a thumbnail the media role made and announces it with
// message.updated.
func (a *applier) thumbnail() (*chat.Sequenced, error) {
	m, refused, err := a.liveMessage()
	if m == nil {
		return refused, err
	}
	rec, err := a.b.s.store.Attachment(a.b.ctx, a.cmd.AttachmentID)
	if isStorageErr(err) {
		return nil, err
	}
	if err != nil || rec.MessageID != m.ID || rec.ThumbnailKey != "" {
		return a.ok(), nil // unknown, or already done: idempotent
	}
	n := *m
	n.Attachments = slices.Clone(m.Attachments)
	found := false
	for i := range n.Attachments {
		if n.Attachments[i].ID == rec.ID {
			n.Attachments[i].Thumbnail = true
			found = true
		}
	}
	if !found {
		return a.ok(), nil
	}
	rec.ThumbnailKey = a.cmd.ThumbnailKey
	rec.Thumbnail = true
	a.change.Attachments = append(a.change.Attachments, rec)
	n.Version++
	a.putMessage(&n)
	mc := n
	a.emit(chat.Event{Type: chat.EventMessageUpdated, Message: &mc})
	return a.ok(), nil
}

func (a *applier) edit() (*chat.Sequenced, error) {
	m, refused, err := a.liveMessage()
	if m == nil {
		return refused, err
	}
	if m.SenderID != a.cmd.Actor {
		return failed(a.cmd, chat.CodeForbidden, "only the sender may edit a message"), nil
	}
	if a.cmd.IfMatch > 0 && a.cmd.IfMatch != m.Version {
		return failed(a.cmd, chat.CodeConflict, "message version is %d", m.Version), nil
	}
	n := *m
	n.Text = a.cmd.Text
	at := a.at
	n.EditedAt = &at
	n.Version++
	a.putMessage(&n)
	mc := n
	a.emit(chat.Event{Type: chat.EventMessageUpdated, Message: &mc})
	out := a.ok()
	out.Result.Message = &mc
	return out, nil
}

func (a *applier) delete() (*chat.Sequenced, error) {
	m, err := a.b.message(a.st, a.cmd.MessageID)
	if isStorageErr(err) {
		return nil, err
	}
	if err != nil {
		return failed(a.cmd, chat.CodeNotFound, "message not found"), nil
	}
	if m.SenderID != a.cmd.Actor && a.st.conv.CreatedBy != a.cmd.Actor {
		return failed(a.cmd, chat.CodeForbidden, "only the sender or the conversation's creator may delete a message"), nil
	}
	if m.Deleted {
		return a.ok(), nil
	}
	n := *m
	n.Text = ""
	n.Attachments = []chat.Attachment{}
	n.Reactions = map[string][]string{}
	n.Deleted = true
	n.Version++
	a.putMessage(&n)
	a.emit(chat.Event{Type: chat.EventMessageDeleted, MessageID: n.ID})
	if t := a.tally(); t != nil {
		t.Deleted++
		dels := append(slices.Clone(t.Deletions), chat.Deletion{At: a.st.conv.LastSeq, Seq: n.Seq})
		if len(dels) > chat.MaxTalliedDeletions {
			dels = dels[len(dels)-chat.MaxTalliedDeletions:]
		}
		t.Deletions = dels
	}
	return a.ok(), nil
}

func (a *applier) react() (*chat.Sequenced, error) {
	m, refused, err := a.liveMessage()
	if m == nil {
		return refused, err
	}
	n := *m
	n.Reactions = make(map[string][]string, len(m.Reactions)+1)
	for k, v := range m.Reactions {
		n.Reactions[k] = slices.Clone(v)
	}
	users := n.Reactions[a.cmd.Emoji]
	has := slices.Contains(users, a.cmd.Actor)
	typ := chat.EventReactionAdded
	switch {
	case a.cmd.Op == chat.OpReact && !has:
		n.Reactions[a.cmd.Emoji] = append(users, a.cmd.Actor)
	case a.cmd.Op == chat.OpUnreact && has:
		typ = chat.EventReactionRemoved
		users = slices.DeleteFunc(users, func(u string) bool { return u == a.cmd.Actor })
		if len(users) == 0 {
			delete(n.Reactions, a.cmd.Emoji)
		} else {
			n.Reactions[a.cmd.Emoji] = users
		}
	default:
		return a.ok(), nil // idempotent: nothing changes
	}
	a.putMessage(&n)
	a.emit(chat.Event{Type: typ, MessageID: n.ID, Emoji: a.cmd.Emoji, UserID: a.cmd.Actor})
	return a.ok(), nil
}

func (a *applier) read() (*chat.Sequenced, error) {
	ms, err := a.b.membership(a.st, a.cmd.Actor)
	if err != nil {
		return nil, err
	}
	seq := min(a.cmd.Seq, a.st.conv.LastSeq)
	if seq <= ms.ReadSeq {
		return a.ok(), nil
	}
	if err := a.advanceRead(ms, seq); err != nil {
		return nil, err
	}
	a.putMembership(ms)
	a.emit(chat.Event{Type: chat.EventReadUpdated, UserID: a.cmd.Actor, ReadSeq: seq})
	return a.ok(), nil
}

func (a *applier) rename() (*chat.Sequenced, error) {
	if a.cmd.Title == nil {
		return failed(a.cmd, chat.CodeInvalid, "title is required"), nil
	}
	if a.st.conv.Title != *a.cmd.Title {
		a.st.conv.Title = *a.cmd.Title
		a.emit(chat.Event{Type: chat.EventConversationUpdated})
		a.change.Events[len(a.change.Events)-1].Conversation = a.publicSnapshot()
	}
	out := a.ok()
	out.Result.Conversation = a.conversationSnapshot()
	return out, nil
}

func (a *applier) addMember() (*chat.Sequenced, error) {
	if a.st.conv.Kind == chat.KindDirect {
		return failed(a.cmd, chat.CodeInvalid, "direct conversations have fixed members"), nil
	}
	uid := a.cmd.UserID
	out := a.ok()
	if a.st.members[uid] {
		out.Result.Conversation = a.conversationSnapshot()
		return out, nil
	}
	a.st.members[uid] = true
	a.st.conv.Members = append(slices.Clone(a.st.conv.Members), uid)
	a.st.conv.MemberCount = len(a.st.conv.Members)
	a.emit(chat.Event{Type: chat.EventMemberAdded, UserID: uid})
	a.change.Events[len(a.change.Events)-1].Conversation = a.publicSnapshot()
	ms, err := a.b.membership(a.st, uid)
	if err != nil {
		return nil, err
	}
	ms.Active, ms.JoinedPosition, ms.LeftPosition = true, a.st.conv.LastPosition, 0
	a.joined(ms)
	a.putMembership(ms)
	out.Result.Created = true
	out.Result.Conversation = a.conversationSnapshot()
	return out, nil
}

func (a *applier) removeMember() (*chat.Sequenced, error) {
	if a.st.conv.Kind == chat.KindDirect {
		return failed(a.cmd, chat.CodeInvalid, "direct conversations have fixed members"), nil
	}
	uid := a.cmd.UserID
	if uid != a.cmd.Actor && a.st.conv.CreatedBy != a.cmd.Actor {
		return failed(a.cmd, chat.CodeForbidden, "only the creator may remove other members"), nil
	}
	if !a.st.members[uid] {
		return failed(a.cmd, chat.CodeNotFound, "not a member"), nil
	}
	delete(a.st.members, uid)
	a.st.conv.Members = slices.DeleteFunc(slices.Clone(a.st.conv.Members), func(m string) bool { return m == uid })
	a.st.conv.MemberCount = len(a.st.conv.Members)
	a.removed = uid
	a.emit(chat.Event{Type: chat.EventMemberRemoved, UserID: uid})
	ms, err := a.b.membership(a.st, uid)
	if err != nil {
		return nil, err
	}
	ms.Active, ms.LeftPosition = false, a.st.conv.LastPosition
	a.putMembership(ms)
	return a.ok(), nil
}
