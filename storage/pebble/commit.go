package pebble

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// Own hands out the partition's next epoch, stored synced so that it
// grows across restarts. A Pebble Commit is whole or nothing, so no
// earlier Commit is left to finish.
func (s *Store) Own(ctx context.Context, partition int) (int64, error) {
	const op = "pebble: own"
	if partition < 0 {
		return 0, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition"}
	}
	if err := s.enter(ctx, op); err != nil {
		return 0, err
	}
	defer s.leave()
	held := s.fence.lock(partitionFence(partition))
	defer s.fence.unlock(held)
	cur, _, err := getUint(s.db, ownerKey(partition))
	if err != nil {
		return 0, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if err := s.db.Set(ownerKey(partition), encodeUint(cur+1), pebble.Sync); err != nil {
		return 0, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return int64(cur + 1), nil
}

// Refuse raises gateway's refusal floor of partition to deadline, unless
// a change of gateway with a Deadline at or after it is stored: it holds
// the partition's lock, as Own and Commit do, so no Commit runs between
// its check and its write.
func (s *Store) Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (bool, error) {
	const op = "pebble: refuse"
	if partition < 0 || gateway == "" || deadline.IsZero() {
		return false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "a partition, a gateway and a deadline are required"}
	}
	if err := s.enter(ctx, op); err != nil {
		return false, err
	}
	defer s.leave()
	held := s.fence.lock(partitionFence(partition))
	defer s.fence.unlock(held)
	d := unsigned(deadline.UnixNano())
	stored, _, err := getUint(s.db, claimedKey(partition, gateway))
	if err != nil {
		return false, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if stored >= d {
		return false, nil
	}
	floor, _, err := getUint(s.db, refuseKey(partition, gateway))
	if err != nil {
		return false, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	if floor >= d {
		return true, nil
	}
	if err := s.db.Set(refuseKey(partition, gateway), encodeUint(d), pebble.Sync); err != nil {
		return false, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return true, nil
}

// Refusals returns partition's refusal floors by gateway.
func (s *Store) Refusals(ctx context.Context, partition int) (map[string]time.Time, error) {
	const op = "pebble: refusals"
	if err := s.enter(ctx, op); err != nil {
		return nil, err
	}
	defer s.leave()
	out := map[string]time.Time{}
	p := refusePrefix(partition)
	err := scan(s.db, p, prefixEnd(p), false, func(k, v []byte) (bool, error) {
		gw, err := lastString(k[len(p):])
		n, derr := decodeUint(v)
		if err != nil || derr != nil {
			return false, fmt.Errorf("corrupt refusal %q", k)
		}
		out[gw] = time.Unix(0, int64(n)).UTC()
		return true, nil
	})
	if err != nil {
		return nil, classify(op, fmt.Errorf("%s: %w", op, err))
	}
	return out, nil
}

// Commit writes changes in one synced batch: all of them or, on any error,
// none. The batch is fenced twice: epoch must be the partition's newest
// (Own), or the Commit fails with CodeConflict; and when a change's
// events' seqs are already stored with the same positions it is a replay
// and is skipped, otherwise the stored LastSeq must equal its PrevSeq, or
// the Commit fails with CodeConflict. A change that stores a deleted
// message also scrubs the message's text and attachments from the stored
// events that carry it. The partition's head moves to head unless it is
// already higher.
func (s *Store) Commit(ctx context.Context, partition int, epoch, head int64, changes []chat.Change) error {
	const op = "pebble: commit"
	if partition < 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition"}
	}
	for i := range changes {
		if err := changes[i].Check(); err != nil {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("change %d: %v", i, err)}
		}
	}
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	defer s.leave()

	names := make([]string, 0, len(changes)+1)
	names = append(names, partitionFence(partition))
	for i := range changes {
		names = append(names, conversationFence(changes[i].Conversation.ID))
	}
	held := s.fence.lock(names...)
	defer s.fence.unlock(held)

	// An indexed batch reads its own writes: a later change of the same
	// Commit sees the events of an earlier one (replay checks, scrubbing).
	b := s.db.NewIndexedBatch()
	defer b.Close()
	// Own takes the head's lock too, so the epoch cannot move until the
	// batch is written.
	if cur, _, err := getUint(b, ownerKey(partition)); err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	} else if epoch <= 0 || uint64(epoch) != cur {
		return &chat.Error{Code: chat.CodeConflict, Op: op, Message: fmt.Sprintf("partition %d is owned at epoch %d; the commit has epoch %d", partition, cur, epoch)}
	}
	lastSeqs := make(map[string]int64, len(changes))
	floors := map[string]uint64{}  // refusal floors read, by gateway
	claimed := map[string]uint64{} // the latest deadline stored now, by gateway
	for i := range changes {
		ch := &changes[i]
		n := b.Count()
		if err := stageChange(b, ch, lastSeqs); err != nil {
			if chat.ErrorCode(err) == chat.CodeConflict {
				return err
			}
			return classify(op, fmt.Errorf("%s: change %d: %w", op, i, err))
		}
		if b.Count() == n || ch.Gateway == "" || ch.Deadline.IsZero() {
			continue // a replay (stored before, so not refusable), or never refused
		}
		floor, ok := floors[ch.Gateway]
		if !ok {
			var err error
			if floor, _, err = getUint(b, refuseKey(partition, ch.Gateway)); err != nil {
				return classify(op, fmt.Errorf("%s: %w", op, err))
			}
			floors[ch.Gateway] = floor
		}
		d := unsigned(ch.Deadline.UnixNano())
		if floor >= d {
			return &chat.Error{Code: chat.CodeConflict, Op: op, Err: chat.ErrRefused, Message: fmt.Sprintf("change %d: gateway %s refused its commands up to %s", i, ch.Gateway, time.Unix(0, int64(floor)).UTC().Format(time.RFC3339Nano))}
		}
		claimed[ch.Gateway] = max(claimed[ch.Gateway], d)
	}
	for gw, d := range claimed {
		cur, _, err := getUint(b, claimedKey(partition, gw))
		if err != nil {
			return classify(op, fmt.Errorf("%s: %w", op, err))
		}
		if d > cur {
			if err := b.Set(claimedKey(partition, gw), encodeUint(d), nil); err != nil {
				return classify(op, fmt.Errorf("%s: %w", op, err))
			}
		}
	}
	if err := stageHead(b, partition, head); err != nil {
		return classify(op, fmt.Errorf("%s: head: %w", op, err))
	}
	if b.Empty() {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return classify(op, fmt.Errorf("%s: %w", op, err))
	}
	var purge []string
	for i := range changes {
		for _, m := range changes[i].Messages {
			if m.Deleted {
				purge = append(purge, changes[i].Conversation.ID)
				break
			}
		}
	}
	if len(purge) > 0 {
		if err := s.purge(purge); err != nil {
			return classify(op, fmt.Errorf("%s: purge deleted text: %w", op, err))
		}
	}
	return nil
}

// purge makes deleted text leave the files, not just the live view: the
// memtable is flushed (the WAL that held the text becomes obsolete), a
// second rotation makes the WAL manager reuse the obsolete log, which
// noRecycleFS turns into a removal, and the conversation's key ranges are
// compacted so older versions in sstables are dropped. Deletes are rare,
// so their cost stays off the send path.
func (s *Store) purge(cids []string) error {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	if err := s.db.Flush(); err != nil {
		return err
	}
	if err := s.db.Set(metaKey("purge"), []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), pebble.Sync); err != nil {
		return err
	}
	if err := s.db.Flush(); err != nil {
		return err
	}
	for _, cid := range cids {
		// The conversation's state holds its last message, maybe the
		// deleted one.
		for _, p := range [][]byte{evPrefix(cid), msgPrefix(cid), convKey(cid)} {
			if err := s.db.Compact(context.Background(), p, prefixEnd(p), false); err != nil {
				return err
			}
		}
	}
	return nil
}

// noRecycleFS never reuses an old WAL file for a new one: a recycled log
// keeps the bytes of deleted messages on disk until it happens to be
// overwritten. The contract of ReuseForWrite allows removing the old file
// and creating a new one.
type noRecycleFS struct{ vfs.FS }

func (fs noRecycleFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.FS.Remove(oldname); err != nil && !oserror.IsNotExist(err) {
		return nil, err
	}
	return fs.FS.Create(newname, category)
}

// stageChange adds one change to b, or nothing if it replays a stored one.
// lastSeqs holds the LastSeq of the conversations this Commit has read or
// staged, so a busy conversation is read once per Commit.
func stageChange(b *pebble.Batch, ch *chat.Change, lastSeqs map[string]int64) error {
	cid := ch.Conversation.ID
	storedSeq, known := lastSeqs[cid]
	if !known {
		raw, _, err := getRaw(b, convKey(cid))
		if err != nil {
			return fmt.Errorf("read conversation: %w", err)
		}
		if storedSeq, err = record.ConversationLastSeq(raw); err != nil {
			return fmt.Errorf("read conversation: %w", err)
		}
		lastSeqs[cid] = storedSeq
	}
	if n := len(ch.Events); n > 0 && storedSeq >= ch.Events[n-1].Seq {
		return checkReplay(b, ch, storedSeq)
	}
	if storedSeq != ch.PrevSeq {
		return conflict(cid, storedSeq, ch.PrevSeq)
	}

	lastSeqs[cid] = ch.Conversation.LastSeq
	if err := setJSON(b, convKey(cid), &ch.Conversation); err != nil {
		return err
	}
	for i := range ch.Events {
		ev := &ch.Events[i]
		seq := uint64(ev.Seq)
		if err := setJSON(b, evKey(cid, seq), ev); err != nil {
			return err
		}
		if err := b.Set(evPosKey(cid, uint64(ev.Position)), encodeUint(seq), nil); err != nil {
			return err
		}
		if ev.Message != nil {
			if err := b.Set(msgEvKey(cid, ev.Message.ID, seq), nil, nil); err != nil {
				return err
			}
		}
	}
	// Messages after events, so that scrubbing sees this change's events.
	for _, m := range ch.Messages {
		if err := stageMessage(b, m); err != nil {
			return err
		}
	}
	for i := range ch.Memberships {
		m := &ch.Memberships[i]
		if err := setJSON(b, memKey(m.UserID, cid), m); err != nil {
			return err
		}
	}
	if err := stageMemberRows(b, ch); err != nil {
		return err
	}
	for _, d := range ch.Dedups {
		if err := b.Set(dedupKey(cid, d.SenderID, d.ClientID), []byte(d.MessageID), nil); err != nil {
			return err
		}
	}
	for i := range ch.Attachments {
		a := &ch.Attachments[i]
		if err := setJSON(b, attKey(a.ID), a); err != nil {
			return err
		}
	}
	return nil
}

// checkReplay accepts a change whose events are all stored at the same
// seqs with the same positions and types: the same commands, applied
// again. A change whose seqs hold other events was built by a stale
// sequencer on an old state, and is a conflict.
func checkReplay(b *pebble.Batch, ch *chat.Change, storedSeq int64) error {
	cid := ch.Conversation.ID
	for i := range ch.Events {
		ev := &ch.Events[i]
		var got chat.Event
		found, err := getJSON(b, evKey(cid, uint64(ev.Seq)), &got)
		if err != nil {
			return fmt.Errorf("read event %d: %w", ev.Seq, err)
		}
		if !found || got.Position != ev.Position || got.Type != ev.Type {
			return conflict(cid, storedSeq, ch.PrevSeq)
		}
	}
	return nil
}

func conflict(cid string, stored, prev int64) error {
	return &chat.Error{
		Code:    chat.CodeConflict,
		Op:      "pebble: commit",
		Message: fmt.Sprintf("conversation %s is at seq %d; the change was based on seq %d", cid, stored, prev),
	}
}

// stageMessage stores m whole, replacing its previous state: a message
// keeps the seq of its message.created event for life, so its key never
// moves and no read is needed. A deleted message is stored as a tombstone
// without text or attachments, and its content is scrubbed from the events
// that carry it.
func stageMessage(b *pebble.Batch, m chat.Message) error {
	cid := m.ConversationID
	if m.Deleted {
		m.Text = ""
		m.Attachments = []chat.Attachment{}
	}
	seq := uint64(m.Seq)
	if err := setJSON(b, msgKey(cid, seq), &m); err != nil {
		return err
	}
	if err := b.Set(msgIDKey(cid, m.ID), encodeUint(seq), nil); err != nil {
		return err
	}
	if m.Deleted {
		return scrub(b, cid, m.ID)
	}
	return nil
}

// scrub removes the text and attachments of message mid from every stored
// event that carries it (message.created, message.updated), including
// events staged earlier in b, and forgets the index that found them.
func scrub(b *pebble.Batch, cid, mid string) error {
	prefix := msgEvPrefix(cid, mid)
	var keys [][]byte
	err := scan(b, prefix, prefixEnd(prefix), false, func(k, _ []byte) (bool, error) {
		keys = append(keys, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("scrub message %s: %w", mid, err)
	}
	for _, k := range keys {
		key := evKey(cid, trailingUint(k))
		var ev chat.Event
		found, err := getJSON(b, key, &ev)
		if err != nil {
			return fmt.Errorf("scrub message %s: %w", mid, err)
		}
		if found && ev.Message != nil && ev.Message.ID == mid && (ev.Message.Text != "" || len(ev.Message.Attachments) > 0) {
			ev.Message.Text = ""
			ev.Message.Attachments = []chat.Attachment{}
			if err := setJSON(b, key, &ev); err != nil {
				return err
			}
		}
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	return nil
}

// stageHead raises the partition's head to head.
func stageHead(b *pebble.Batch, partition int, head int64) error {
	if head <= 0 {
		return nil
	}
	key := headKey(partition)
	cur, _, err := getUint(b, key)
	if err != nil {
		return err
	}
	if uint64(head) <= cur {
		return nil
	}
	return b.Set(key, encodeUint(uint64(head)), nil)
}

// setJSON stages v, in its stored form (record.EncodeRow), at key.
func setJSON(b *pebble.Batch, key []byte, v any) error {
	val, err := record.EncodeRow(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	return b.Set(key, val, nil)
}
