package cassandra

import (
	"errors"

	"github.com/parleychat/parley/chat"
)

// Bounds of one merged change: its claim carries it whole in the pending
// column, and its rows go in 40 KiB batches.
const (
	mergeMaxEvents = 64
	mergeMaxBytes  = 64 << 10
)

// mergeRuns folds consecutive changes of one conversation into as few
// changes as the bounds allow, so that a sequencer batch of many sends to
// one conversation costs one claim, one write and one settle instead of one
// each per send: a lightweight transaction is several round trips, and
// per-send claims capped a busy conversation at tens of messages a second.
//
// Changes merge only while each one starts where the previous ended
// (PrevSeq equals the previous LastSeq). The merged change has the first
// PrevSeq and the last conversation state; events, dedups in order; a
// message, membership or attachment touched twice keeps its last version
// only, as rows of one change share a write timestamp and Cassandra would
// otherwise keep whichever value compares greater.
//
// A run whose first changes are stored already (a replay that overlaps new
// work) is committed part by part instead; see errPartialReplay.
func mergeRuns(chs []*chat.Change) []run {
	var out []run
	var cur *chat.Change
	var parts []*chat.Change
	var size int
	for _, ch := range chs {
		n := changeSize(ch)
		if cur != nil && ch.PrevSeq == cur.Conversation.LastSeq &&
			len(cur.Events)+len(ch.Events) <= mergeMaxEvents && size+n <= mergeMaxBytes {
			appendChange(cur, ch)
			parts = append(parts, ch)
			size += n
			continue
		}
		if cur != nil {
			out = append(out, run{cur, parts})
		}
		parts = []*chat.Change{ch}
		cp := *ch
		cp.Events = append([]chat.Event(nil), ch.Events...)
		cp.Messages = append([]chat.Message(nil), ch.Messages...)
		cp.Memberships = append([]chat.Membership(nil), ch.Memberships...)
		cp.Dedups = append([]chat.Dedup(nil), ch.Dedups...)
		cp.Attachments = append([]chat.AttachmentRecord(nil), ch.Attachments...)
		cur, size = &cp, n
	}
	if cur != nil {
		out = append(out, run{cur, parts})
	}
	return out
}

// run is a merged change and the changes it was made of.
type run struct {
	merged *chat.Change
	parts  []*chat.Change
}

// errPartialReplay says that the stored conversation ends inside a merged
// change: its first parts are stored (a replay), the rest is new.
var errPartialReplay = errors.New("the change is partly stored already")

// appendChange adds next, which starts where into ends, to into.
func appendChange(into, next *chat.Change) {
	into.Conversation = next.Conversation
	into.Events = append(into.Events, next.Events...)
	into.Dedups = append(into.Dedups, next.Dedups...)
	for _, m := range next.Messages {
		into.Messages = replaceOrAppend(into.Messages, m, func(a chat.Message) bool { return a.ID == m.ID })
	}
	for _, m := range next.Memberships {
		into.Memberships = replaceOrAppend(into.Memberships, m, func(a chat.Membership) bool { return a.UserID == m.UserID })
	}
	for _, a := range next.Attachments {
		into.Attachments = replaceOrAppend(into.Attachments, a, func(b chat.AttachmentRecord) bool { return b.ID == a.ID })
	}
}

func replaceOrAppend[T any](list []T, v T, same func(T) bool) []T {
	for i := range list {
		if same(list[i]) {
			list[i] = v
			return list
		}
	}
	return append(list, v)
}

// changeSize estimates the encoded size of a change's content.
func changeSize(ch *chat.Change) int {
	n := 256
	for i := range ch.Events {
		n += 256
		if m := ch.Events[i].Message; m != nil {
			n += len(m.Text)
		}
	}
	for i := range ch.Messages {
		n += 256 + len(ch.Messages[i].Text)
	}
	return n + 128*(len(ch.Memberships)+len(ch.Dedups)+len(ch.Attachments))
}
