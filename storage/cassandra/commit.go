package cassandra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
)

// storedConversation is a conversation as stored: chat.Conversation keeps
// LastPosition and LastActivity out of its JSON, but the store must keep
// them (the sequencer skips replayed commands by LastPosition).
type storedConversation struct {
	chat.Conversation
	LastPosition int64     `json:"last_position"`
	LastActivity time.Time `json:"last_activity"`
}

func (sc *storedConversation) conversation() chat.Conversation {
	c := sc.Conversation
	c.LastPosition, c.LastActivity = sc.LastPosition, sc.LastActivity
	return c
}

// intent is a claimed Change, kept in the conversation row's pending
// column until it is written everywhere. TS is the write timestamp (µs) of
// all its rows: it grows with every claim of the conversation, so a late
// duplicate write of an older Change can never overwrite a newer one (a
// scrubbed event stays scrubbed).
type intent struct {
	Change chat.Change `json:"change"`
	TS     int64       `json:"ts"`
	// LastPosition and LastActivity of the conversation, which its JSON
	// leaves out.
	LastPosition int64     `json:"last_position"`
	LastActivity time.Time `json:"last_activity"`
}

// convRow is the fencing part of a conversation row.
type convRow struct {
	exists  bool
	lastSeq int64
	lastTS  int64
	pending string
}

// commitParallelism bounds how many conversations of one Commit are
// written at once.
const commitParallelism = 8

// maxClaimAttempts bounds how often a Commit retries a claim that lost to
// another writer's claim it then found settled or finished.
const maxClaimAttempts = 20

// Commit writes changes in order. Each change is fenced: when its events'
// seqs are already stored with the same positions it is a replay and is
// skipped; otherwise the stored LastSeq must equal its PrevSeq, or the
// Commit fails with CodeConflict and the change is not written. A change
// is claimed by a lightweight transaction on its conversation row (LastSeq
// moves from PrevSeq to the new LastSeq, and the change is recorded as
// pending), then written in one unlogged batch (several, in order, for a
// change above 40 KiB), then settled by a second lightweight transaction
// that makes the conversation's new state readable. Once claimed, a change
// is certain to be written whole: if its writer fails, the next Commit on
// the conversation (the sequencer's retry or replay) finishes it first. A
// change that stores a deleted message also scrubs the message's text and
// attachments from the stored events that carry it, in the same batch.
// Changes of one conversation are written in order, conversations side by
// side. The partition's head moves to head, never back, once every change
// is written.
//
// Unlike the embedded store, changes of one Commit are atomic one by one,
// not together: when a change conflicts, changes of the Commit that were
// written stay written (each is a valid, fenced step, and replaying it is
// a no-op), and the head is not moved.
func (s *Store) Commit(ctx context.Context, partition int, head int64, changes []chat.Change) error {
	const op = "cassandra: commit"
	if partition < 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition"}
	}
	for i := range changes {
		if err := changes[i].Check(); err != nil {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("change %d: %v", i, err)}
		}
	}
	// Changes of one conversation go in order; conversations are
	// independent, so they are committed side by side.
	// Consecutive changes of one conversation are merged (mergeRuns).
	var order []string
	byConv := map[string][]*chat.Change{}
	for i := range changes {
		cid := changes[i].Conversation.ID
		if _, ok := byConv[cid]; !ok {
			order = append(order, cid)
		}
		byConv[cid] = append(byConv[cid], &changes[i])
	}
	errs := make([]error, len(order))
	var g errgroup.Group
	g.SetLimit(commitParallelism)
	for k, cid := range order {
		g.Go(func() error {
			for _, r := range mergeRuns(byConv[cid]) {
				err := s.commitChange(ctx, r.merged, len(r.parts) > 1)
				if errors.Is(err, errPartialReplay) {
					// Part of the run is stored: commit it change by
					// change, which skips the stored ones.
					for _, ch := range r.parts {
						if err = s.commitChange(ctx, ch, false); err != nil {
							break
						}
					}
				}
				if err != nil {
					errs[k] = fmt.Errorf("conversation %s, seqs from %d: %w", cid, r.merged.PrevSeq+1, err)
					return nil
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	for _, err := range errs {
		if err != nil {
			return classify(op, err)
		}
	}
	if err := s.raiseHead(ctx, partition, head); err != nil {
		return classify(op, fmt.Errorf("head: %w", err))
	}
	return nil
}

// readConvRow reads the fencing columns with a serial read, which sees
// (and completes) every claim that was accepted.
func (s *Store) readConvRow(ctx context.Context, cid string) (convRow, error) {
	var (
		r       convRow
		lastSeq *int64
		lastTS  *int64
		pending *string
	)
	err := s.q(ctx, `SELECT last_seq, last_ts, pending FROM {conversations} WHERE id = ?`, cid).
		Consistency(s.serial).Scan(&lastSeq, &lastTS, &pending)
	if errors.Is(err, gocql.ErrNotFound) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read conversation %s: %w", cid, err)
	}
	r.exists = true
	if lastSeq != nil {
		r.lastSeq = *lastSeq
	}
	if lastTS != nil {
		r.lastTS = *lastTS
	}
	if pending != nil {
		r.pending = *pending
	}
	return r, nil
}

// commitChange commits one change. The first claim is tried blind, as if
// the row were at PrevSeq with nothing pending (the common case: one
// round trip); a refused claim returns the row as it is, and the change is
// then decided on it: finish a pending change, accept a replay, refuse a
// conflict, or claim again.
//
// merged says that ch is several changes merged; when the stored
// conversation ends inside it, commitChange returns errPartialReplay
// instead of a conflict, and the caller commits the parts one by one.
func (s *Store) commitChange(ctx context.Context, ch *chat.Change, merged bool) error {
	cid := ch.Conversation.ID
	row := convRow{exists: ch.PrevSeq > 0, lastSeq: ch.PrevSeq}
	known := false
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if attempt >= maxClaimAttempts {
			return &chat.Error{Code: chat.CodeUnavailable, Op: "cassandra: commit", Message: fmt.Sprintf("conversation %s: too much contention", cid)}
		}
		if known {
			if row.pending != "" {
				// A claimed change that is not written everywhere yet (its
				// writer is busy, or crashed): finish it, then look again.
				if err := s.finish(ctx, cid, row.pending); err != nil {
					return err
				}
				var err error
				if row, err = s.readConvRow(ctx, cid); err != nil {
					return err
				}
				continue
			}
			if n := len(ch.Events); n > 0 && row.lastSeq >= ch.Events[n-1].Seq {
				return s.checkReplay(ctx, ch, row.lastSeq)
			}
			if merged && row.exists && row.lastSeq > ch.PrevSeq && row.lastSeq < ch.Conversation.LastSeq {
				return errPartialReplay
			}
			if row.lastSeq != ch.PrevSeq || (!row.exists && ch.PrevSeq != 0) {
				return conflict(cid, row.lastSeq, ch.PrevSeq)
			}
		}

		ts := max(time.Now().UnixMicro(), row.lastTS+1)
		in := &intent{Change: *ch, TS: ts, LastPosition: ch.Conversation.LastPosition, LastActivity: ch.Conversation.LastActivity}
		raw, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode change: %w", err)
		}
		// The change goes to the claimed_changes table first, with a plain write;
		// the claim then names it by its timestamp. A claim that carried
		// the change itself sent it through Paxos (written twice more, in
		// system.paxos and in the row, then deleted), which was most of the
		// store's work.
		// The reference is unique to this attempt: two writers may pick the
		// same ts (lastTS+1 when their clocks lag), and neither may touch
		// the other's record.
		ref := newIntentRef(ts)
		if err := s.q(ctx, `INSERT INTO {claimed_changes} (conversation_id, ref, body) VALUES (?, ?, ?) USING TTL ?`,
			cid, ref, string(raw), intentTTL).Exec(); err != nil {
			return fmt.Errorf("record change: %w", err)
		}
		pending := pendingPrefix + ref
		cur := map[string]any{}
		var applied bool
		if !row.exists {
			applied, err = s.q(ctx, `INSERT INTO {conversations} (id, last_seq, last_ts, pending) VALUES (?, ?, ?, ?) IF NOT EXISTS`,
				cid, ch.Conversation.LastSeq, ts, pending).MapScanCAS(cur)
		} else {
			// last_ts < ts keeps write timestamps growing even if clocks
			// of writers disagree.
			applied, err = s.q(ctx, `UPDATE {conversations} SET last_seq = ?, last_ts = ?, pending = ? WHERE id = ? IF last_seq = ? AND pending = null AND last_ts < ?`,
				ch.Conversation.LastSeq, ts, pending, cid, ch.PrevSeq, ts).MapScanCAS(cur)
		}
		if err != nil {
			// The claim may or may not have been accepted; the caller's
			// retry finds it pending (and finishes it) or not.
			return fmt.Errorf("claim: %w", err)
		}
		if applied {
			return s.finishIntent(ctx, cid, in, ref)
		}
		s.forgetIntent(ctx, cid, ref) // refused: nobody will look for it
		row, known = rowOfCAS(cur), true
	}
}

// rowOfCAS reads the row a refused conditional write returned: the
// columns of its conditions, none when the row does not exist.
func rowOfCAS(cur map[string]any) convRow {
	var r convRow
	v, ok := cur["last_seq"]
	if !ok {
		return r
	}
	r.exists = true
	r.lastSeq, _ = v.(int64)
	r.lastTS, _ = cur["last_ts"].(int64)
	r.pending, _ = cur["pending"].(string)
	return r
}

// checkReplay accepts a change whose events are all stored at the same
// seqs with the same positions and types: the same commands, applied
// again. A change whose seqs hold other events was built by a stale
// sequencer on an old state, and is a conflict.
func (s *Store) checkReplay(ctx context.Context, ch *chat.Change, storedSeq int64) error {
	cid := ch.Conversation.ID
	for i := range ch.Events {
		ev := &ch.Events[i]
		var (
			pos int64
			typ string
		)
		err := s.q(ctx, `SELECT position, type FROM {events} WHERE conversation_id = ? AND bucket = ? AND seq = ?`,
			cid, bucketOf(ev.Seq), ev.Seq).Scan(&pos, &typ)
		if errors.Is(err, gocql.ErrNotFound) {
			return conflict(cid, storedSeq, ch.PrevSeq)
		}
		if err != nil {
			return fmt.Errorf("read event %d: %w", ev.Seq, err)
		}
		if pos != ev.Position || typ != ev.Type {
			return conflict(cid, storedSeq, ch.PrevSeq)
		}
	}
	return nil
}

func conflict(cid string, stored, prev int64) error {
	return &chat.Error{
		Code:    chat.CodeConflict,
		Op:      "cassandra: commit",
		Message: fmt.Sprintf("conversation %s is at seq %d; the change was based on seq %d", cid, stored, prev),
	}
}

// intentTTL bounds how long a recorded change outlives its claim when
// nobody deletes it (a writer that died between recording and claiming).
// A claimed change is finished long before: the partition's next owner
// handles the same commands again within a rebalance.
const intentTTL = 7 * 24 * 3600

// pendingPrefix marks a pending column that names a change in the
// claimed_changes table; older rows hold the change's JSON itself (it starts with "{").
const pendingPrefix = "intent:"

// newIntentRef names one recorded change: its claim's timestamp and 64
// random bits.
func newIntentRef(ts int64) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(ts, 10) + "." + hex.EncodeToString(b[:])
}

// finish finishes the claimed change a pending column names. When the
// change is no longer recorded, either whoever claimed it has finished it
// (and deleted the record) since the column was read, and the caller reads
// the row again, or the record is lost (it outlived intentTTL unfinished),
// which is reported.
func (s *Store) finish(ctx context.Context, cid, pending string) error {
	if !strings.HasPrefix(pending, pendingPrefix) {
		var in intent
		if err := json.Unmarshal([]byte(pending), &in); err != nil {
			return fmt.Errorf("decode pending change of %s: %w", cid, err)
		}
		return s.finishIntent(ctx, cid, &in, "")
	}
	ref := strings.TrimPrefix(pending, pendingPrefix)
	var body string
	err := s.q(ctx, `SELECT body FROM {claimed_changes} WHERE conversation_id = ? AND ref = ?`, cid, ref).Scan(&body)
	if errors.Is(err, gocql.ErrNotFound) {
		row, err := s.readConvRow(ctx, cid)
		if err != nil {
			return err
		}
		if row.pending == pending {
			return fmt.Errorf("the pending change %s of conversation %s has no record (it expired unfinished)", ref, cid)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pending change of %s: %w", cid, err)
	}
	var in intent
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		return fmt.Errorf("decode pending change of %s: %w", cid, err)
	}
	return s.finishIntent(ctx, cid, &in, ref)
}

// forgetIntent deletes a recorded change, at best: a leftover expires.
func (s *Store) forgetIntent(ctx context.Context, cid, ref string) {
	_ = s.q(ctx, `DELETE FROM {claimed_changes} WHERE conversation_id = ? AND ref = ?`, cid, ref).Exec()
}

// finishIntent writes a claimed change everywhere, settles the claim and
// deletes the change's record (ref; "" for a change claimed inline). It is
// idempotent, so the claimer and anyone who finds the claim pending may
// run it, even at once: they write the same rows with the same timestamp.
func (s *Store) finishIntent(ctx context.Context, cid string, in *intent, ref string) error {
	stmts, err := s.statements(ctx, in)
	if err != nil {
		return err
	}
	if err := s.write(ctx, in.TS, stmts); err != nil {
		return fmt.Errorf("write change: %w", err)
	}
	state, err := json.Marshal(storedConversation{
		Conversation: in.Change.Conversation,
		LastPosition: in.LastPosition,
		LastActivity: in.LastActivity,
	})
	if err != nil {
		return fmt.Errorf("encode conversation: %w", err)
	}
	// Settled only while this claim is the newest: a helper may have
	// settled it already, and a later change may be pending by now. The
	// claim's timestamp names it (every claim raises last_ts), so the
	// condition need not carry the whole pending change again.
	if _, err := s.q(ctx, `UPDATE {conversations} SET state = ?, pending = null WHERE id = ? IF last_ts = ?`,
		string(state), cid, in.TS).MapScanCAS(map[string]any{}); err != nil {
		return fmt.Errorf("settle change: %w", err)
	}
	if ref != "" {
		s.forgetIntent(ctx, cid, ref)
	}
	return nil
}

// statement is one write of a change.
type statement struct {
	stmt string
	args []any
	size int // approximate, in bytes
}

// maxBatchBytes keeps batches under Cassandra's default
// batch_size_fail_threshold (50 KiB).
const maxBatchBytes = 40 << 10

// write writes a change's statements at timestamp ts in batches of at
// most maxBatchBytes, one after the other in order: one batch for an
// ordinary change; a huge one (a group created with hundreds of members)
// goes in several, events in seq order first, so readers see a gap-free
// log. The batches are unlogged: the claim is this store's batch log. A
// change is complete in the end because its claim stays pending until it
// is, and whoever finds it pending writes it again; Cassandra's own batch
// log would only write every change twice more (into system.batches and
// out again). Each partition's part of a batch (a change's events, say)
// is still applied at once.
func (s *Store) write(ctx context.Context, ts int64, stmts []statement) error {
	for len(stmts) > 0 {
		b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx).WithTimestamp(ts)
		size := 0
		for len(stmts) > 0 && (len(b.Entries) == 0 || size+stmts[0].size <= maxBatchBytes) {
			b.Query(stmts[0].stmt, stmts[0].args...)
			size += stmts[0].size
			stmts = stmts[1:]
		}
		if err := s.session.ExecuteBatch(b); err != nil {
			return err
		}
	}
	return nil
}

// statements lists the writes of a claimed change.
func (s *Store) statements(ctx context.Context, in *intent) ([]statement, error) {
	ch := &in.Change
	cid := ch.Conversation.ID
	var stmts []statement
	add := func(stmt string, args ...any) {
		size := 32
		for _, a := range args {
			if v, ok := a.(string); ok {
				size += len(v)
			} else {
				size += 8
			}
		}
		stmts = append(stmts, statement{s.stmt(stmt), args, size})
	}

	deleted := map[string]bool{}
	for _, m := range ch.Messages {
		if m.Deleted {
			deleted[m.ID] = true
		}
	}
	own := map[int64]bool{}
	for i := range ch.Events {
		ev := ch.Events[i]
		if ev.Message != nil && deleted[ev.Message.ID] {
			ev.Message = scrubbed(ev.Message)
		}
		data, err := json.Marshal(&ev)
		if err != nil {
			return nil, fmt.Errorf("encode event %d: %w", ev.Seq, err)
		}
		bucket := bucketOf(ev.Seq)
		own[ev.Seq] = true
		add(`INSERT INTO {events} (conversation_id, bucket, seq, position, type, data) VALUES (?, ?, ?, ?, ?, ?)`,
			cid, bucket, ev.Seq, ev.Position, ev.Type, string(data))
		add(`INSERT INTO {event_positions} (conversation_id, bucket, position, seq) VALUES (?, ?, ?, ?)`,
			cid, bucket, ev.Position, ev.Seq)
		// The created event of a message sits at the message's own seq,
		// which scrub knows; only later events that carry it (edits) are
		// indexed, which spares every send one more row.
		if ev.Message != nil && !deleted[ev.Message.ID] && ev.Seq != ev.Message.Seq {
			add(`INSERT INTO {message_events} (conversation_id, message_id, seq) VALUES (?, ?, ?)`, cid, ev.Message.ID, ev.Seq)
		}
	}
	for _, m := range ch.Messages {
		if m.Deleted {
			m.Text = ""
			m.Attachments = []chat.Attachment{}
		}
		data, err := json.Marshal(&m)
		if err != nil {
			return nil, fmt.Errorf("encode message %s: %w", m.ID, err)
		}
		add(`INSERT INTO {messages} (conversation_id, bucket, seq, data) VALUES (?, ?, ?, ?)`, cid, bucketOf(m.Seq), m.Seq, string(data))
		add(`INSERT INTO {message_ids} (conversation_id, message_id, seq) VALUES (?, ?, ?)`, cid, m.ID, m.Seq)
		if m.Deleted {
			if err := s.scrub(ctx, cid, m.ID, m.Seq, own, add); err != nil {
				return nil, err
			}
		}
	}
	for i := range ch.Memberships {
		m := &ch.Memberships[i]
		data, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("encode membership: %w", err)
		}
		add(`INSERT INTO {memberships} (user_id, conversation_id, data) VALUES (?, ?, ?)`, m.UserID, cid, string(data))
	}
	joined, left := ch.MemberMoves()
	for _, uid := range joined {
		add(`INSERT INTO {conversation_members} (conversation_id, user_id) VALUES (?, ?)`, cid, uid)
	}
	for _, uid := range left {
		add(`DELETE FROM {conversation_members} WHERE conversation_id = ? AND user_id = ?`, cid, uid)
	}
	for _, d := range ch.Dedups {
		add(`INSERT INTO {send_dedups} (conversation_id, sender_id, client_id, message_id) VALUES (?, ?, ?, ?) USING TTL ?`,
			cid, d.SenderID, d.ClientID, d.MessageID, s.dedupTTL)
	}
	for i := range ch.Attachments {
		a := &ch.Attachments[i]
		data, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode attachment: %w", err)
		}
		add(`INSERT INTO {attachments} (id, data) VALUES (?, ?)`, a.ID, string(data))
	}
	return stmts, nil
}

// scrub adds to the batch the rewrite, without text and attachments, of
// every stored event that carries message mid (message.created at the
// message's seq, message.updated found in message_events), except the
// change's own events (skip), which are written scrubbed already, and
// forgets the index that found them.
func (s *Store) scrub(ctx context.Context, cid, mid string, mseq int64, skip map[int64]bool, add func(string, ...any)) error {
	iter := s.q(ctx, `SELECT seq FROM {message_events} WHERE conversation_id = ? AND message_id = ?`, cid, mid).Iter()
	seqs := []int64{mseq}
	var seq int64
	for iter.Scan(&seq) {
		if seq != mseq {
			seqs = append(seqs, seq)
		}
	}
	if err := iter.Close(); err != nil {
		return fmt.Errorf("scrub message %s: %w", mid, err)
	}
	for _, seq := range seqs {
		if skip[seq] {
			continue
		}
		var data string
		err := s.q(ctx, `SELECT data FROM {events} WHERE conversation_id = ? AND bucket = ? AND seq = ?`, cid, bucketOf(seq), seq).Scan(&data)
		if errors.Is(err, gocql.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("scrub message %s: %w", mid, err)
		}
		var ev chat.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("scrub message %s: decode event %d: %w", mid, seq, err)
		}
		if ev.Message != nil && ev.Message.ID == mid {
			ev.Message = scrubbed(ev.Message)
			raw, err := json.Marshal(&ev)
			if err != nil {
				return err
			}
			add(`UPDATE {events} SET data = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`, string(raw), cid, bucketOf(seq), seq)
		}
	}
	add(`DELETE FROM {message_events} WHERE conversation_id = ? AND message_id = ?`, cid, mid)
	return nil
}

// scrubbed is a copy of m without its content.
func scrubbed(m *chat.Message) *chat.Message {
	c := *m
	c.Text = ""
	c.Attachments = []chat.Attachment{}
	return &c
}
