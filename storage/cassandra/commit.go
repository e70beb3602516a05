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
	"sync"
	"time"

	"github.com/gocql/gocql"
	"golang.org/x/sync/errgroup"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/chat/record"
)

// intent is one change of a claimed batch, with its write timestamp (µs).
// Every change of a batch has its own, growing timestamp, so a row that
// two changes of one batch write (a message sent, then edited) keeps the
// later version, and a late duplicate write of an older batch can never
// overwrite a newer one (a scrubbed event stays scrubbed).
type intent struct {
	Change record.Change `json:"change"`
	TS     int64         `json:"ts"`
	// LastPosition and LastActivity of the conversation, which its JSON
	// leaves out.
	LastPosition int64     `json:"last_position"`
	LastActivity time.Time `json:"last_activity"`
}

// claimedBatch is what a claim names: the changes a Commit decided to
// write, recorded before the claim so that whoever finds the claim
// (Own) can write them again.
type claimedBatch struct {
	Intents []*intent `json:"intents"`
}

// owned is this store's hold on one log partition.
type owned struct {
	// mu serializes Own and Commit of the partition: the decisions of a
	// Commit rest on the conversations' last seqs, which only this
	// store's Commits move while it holds the epoch.
	mu sync.Mutex
	// epoch is the partition's epoch this store took with Own; 0 when it
	// holds none (never taken, or lost: a refused or uncertain claim).
	epoch int64
	// lastTS is the timestamp of the partition's newest claim.
	lastTS int64
	// seqs caches conversations' last seqs as this store's Commits left
	// them; it is valid while epoch is, since nobody else writes the
	// partition's conversations meanwhile.
	seqs map[string]int64
	// fences and refused are the row's as Own read them: every claim is
	// conditioned on fences, so a Refuse since then fails the claim, and
	// refused are the floors the changes are checked against.
	fences  *int64
	refused map[string]int64
}

// maxCachedSeqs bounds a partition's seqs cache; past it the cache starts
// again (the store then reads last seqs back as needed).
const maxCachedSeqs = 1 << 17

// commitParallelism bounds how many conversations (or reads) of one Commit
// run at once.
const commitParallelism = 16

// maxOwnAttempts bounds how often Own retries when a claim slips in
// between its read and its own conditional write.
const maxOwnAttempts = 20

// maxClaimBytes bounds the record of one claim (Cassandra refuses a
// mutation above half its commit log segment, 16 MiB by default); a
// larger Commit is claimed and written in several parts, in order.
const maxClaimBytes = 4 << 20

// batchTTL bounds how long the record of an epoch's last batch outlives
// it. A claim is finished by its writer or by the partition's next Own,
// long before; a claim found without its record is that old, and was
// finished.
const batchTTL = 30 * 24 * 3600

func (s *Store) partition(p int) *owned {
	s.ownedMu.Lock()
	defer s.ownedMu.Unlock()
	po := s.owned[p]
	if po == nil {
		po = &owned{}
		s.owned[p] = po
	}
	return po
}

// Own takes partition for this store with one lightweight transaction on
// the partition's row of partition_owners: the epoch moves up by one, on
// the condition that the row is as read (epoch and the timestamp of the
// newest claim), so a claim that slips in between is seen. The batch that
// the row names as claimed, if any, is written again first (it may be
// half-written: its writer crashed, or is a zombie); writing it twice is
// harmless, as its rows carry the claim's timestamps.
func (s *Store) Own(ctx context.Context, partition int) (int64, error) {
	const op = "cassandra: own"
	if partition < 0 {
		return 0, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition"}
	}
	po := s.partition(partition)
	po.mu.Lock()
	defer po.mu.Unlock()
	po.epoch = 0
	for attempt := 0; attempt < maxOwnAttempts; attempt++ {
		var (
			epoch, lastTS, fences *int64
			pending               *string
			refused               map[string]int64
		)
		// A serial read sees, and completes, a claim Paxos accepted but
		// had not committed when its writer gave up.
		err := s.q(ctx, `SELECT epoch, last_ts, pending, fences, refused FROM {partition_owners} WHERE partition = ?`, partition).
			Consistency(s.serial).Scan(&epoch, &lastTS, &pending, &fences, &refused)
		if errors.Is(err, gocql.ErrNotFound) {
			applied, err := s.q(ctx, `INSERT INTO {partition_owners} (partition, epoch, last_ts, fences) VALUES (?, 1, 0, 0) IF NOT EXISTS`, partition).
				MapScanCAS(map[string]any{})
			if err != nil {
				return 0, classify(op, err)
			}
			if applied {
				zero := int64(0)
				po.epoch, po.lastTS, po.seqs, po.fences, po.refused = 1, 0, map[string]int64{}, &zero, nil
				return 1, nil
			}
			continue
		}
		if err != nil {
			return 0, classify(op, err)
		}
		e, ts := deref(epoch), deref(lastTS)
		if pending != nil && *pending != "" {
			if err := s.finishBatch(ctx, partition, *pending); err != nil {
				return 0, classify(op, err)
			}
		}
		applied, err := s.q(ctx, `UPDATE {partition_owners} SET epoch = ?, pending = null WHERE partition = ? IF epoch = ? AND last_ts = ?`,
			e+1, partition, e, ts).MapScanCAS(map[string]any{})
		if err != nil {
			return 0, classify(op, err)
		}
		if applied {
			po.epoch, po.lastTS, po.seqs, po.fences, po.refused = e+1, ts, map[string]int64{}, fences, refused
			return e + 1, nil
		}
	}
	return 0, &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: fmt.Sprintf("partition %d: too much contention", partition)}
}

// Refuse raises gateway's refusal floor of partition to deadline with a
// lightweight transaction on the partition's row of partition_owners, the
// row every claim is a lightweight transaction on: conditioned on the
// row's last claim (last_ts) and fences as read, so no claim slips in
// between the check of claimed and the raise, and bumping fences, so
// every claim of an owner that read the row before fails.
func (s *Store) Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (bool, error) {
	const op = "cassandra: refuse"
	if partition < 0 || gateway == "" || deadline.IsZero() {
		return false, &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "a partition, a gateway and a deadline are required"}
	}
	d := deadline.UnixNano()
	for attempt := 0; attempt < maxOwnAttempts; attempt++ {
		var (
			lastTS, fences   *int64
			refused, claimed map[string]int64
		)
		err := s.q(ctx, `SELECT last_ts, fences, refused, claimed FROM {partition_owners} WHERE partition = ?`, partition).
			Consistency(s.serial).Scan(&lastTS, &fences, &refused, &claimed)
		if errors.Is(err, gocql.ErrNotFound) {
			applied, err := s.q(ctx, `INSERT INTO {partition_owners} (partition, epoch, last_ts, fences, refused) VALUES (?, 0, 0, 1, ?) IF NOT EXISTS`,
				partition, map[string]int64{gateway: d}).MapScanCAS(map[string]any{})
			if err != nil {
				return false, classify(op, err)
			}
			if applied {
				return true, nil
			}
			continue
		}
		if err != nil {
			return false, classify(op, err)
		}
		if c, ok := claimed[gateway]; ok && c >= d {
			return false, nil
		}
		if f, ok := refused[gateway]; ok && f >= d {
			return true, nil
		}
		applied, err := s.q(ctx, `UPDATE {partition_owners} SET refused = refused + ?, fences = ? WHERE partition = ? IF last_ts = ? AND fences = ?`,
			map[string]int64{gateway: d}, deref(fences)+1, partition, lastTS, fences).MapScanCAS(map[string]any{})
		if err != nil {
			return false, classify(op, err)
		}
		if applied {
			s.refusedHere(partition, fences, gateway, d)
			return true, nil
		}
	}
	return false, &chat.Error{Code: chat.CodeUnavailable, Op: op, Message: fmt.Sprintf("partition %d: too much contention", partition)}
}

// refusedHere brings this store's hold on partition up to a refusal it
// made itself (the sequencer fences the commands it refuses as expired,
// just before its Commit), so its next claim does not fail on fences it
// moved: only when the hold had seen the row's fences as they were
// before (else a refusal by someone else is still unknown to it).
func (s *Store) refusedHere(partition int, was *int64, gateway string, d int64) {
	s.ownedMu.Lock()
	po := s.owned[partition]
	s.ownedMu.Unlock()
	if po == nil || !po.mu.TryLock() {
		return // a Commit or Own runs: it finds out on its own
	}
	defer po.mu.Unlock()
	if po.epoch == 0 || deref(po.fences) != deref(was) || (po.fences == nil) != (was == nil) {
		return
	}
	f := deref(was) + 1
	po.fences = &f
	refused := make(map[string]int64, len(po.refused)+1)
	for g, v := range po.refused {
		refused[g] = v
	}
	refused[gateway] = max(refused[gateway], d)
	po.refused = refused
}

// Refusals reads partition's refusal floors.
func (s *Store) Refusals(ctx context.Context, partition int) (map[string]time.Time, error) {
	var refused map[string]int64
	err := s.q(ctx, `SELECT refused FROM {partition_owners} WHERE partition = ?`, partition).Consistency(s.serial).Scan(&refused)
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return nil, classify("cassandra: refusals", err)
	}
	out := make(map[string]time.Time, len(refused))
	for gw, f := range refused {
		out[gw] = time.Unix(0, f).UTC()
	}
	return out, nil
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// Commit writes changes in order. It first decides every change on the
// conversations' last seqs (cached from this store's own Commits, else
// read): a change whose events' seqs are already stored with the same
// positions is a replay and is skipped; otherwise the last seq must equal
// its PrevSeq, or the Commit fails with CodeConflict and writes nothing.
// The changes to write are then recorded (a plain write) and claimed with
// one lightweight transaction on the partition's row, on the condition
// that epoch is still the partition's: a stale owner is refused there
// with CodeConflict. The rows follow as plain writes in unlogged batches
// (conversations side by side, a conversation's rows in order), each
// change at its own timestamp above every earlier claim's. Once claimed,
// a batch is certain to be written whole: if its writer fails, the
// partition's next Own writes it. A change that stores a deleted message
// also scrubs the message's text and attachments from the stored events
// that carry it. The partition's head moves to head, never back.
//
// So a Commit costs one lightweight transaction per partition, whatever
// the number of conversations in it; a failed or refused claim leaves the
// store without the partition until Own takes it again.
func (s *Store) Commit(ctx context.Context, partition int, epoch, head int64, changes []chat.Change) error {
	const op = "cassandra: commit"
	if partition < 0 {
		return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: "negative partition"}
	}
	for i := range changes {
		if err := changes[i].Check(); err != nil {
			return &chat.Error{Code: chat.CodeInvalid, Op: op, Message: fmt.Sprintf("change %d: %v", i, err)}
		}
	}
	po := s.partition(partition)
	po.mu.Lock()
	defer po.mu.Unlock()
	if po.epoch == 0 || po.epoch != epoch {
		return &chat.Error{Code: chat.CodeConflict, Op: op, Message: fmt.Sprintf("partition %d: epoch %d is not this store's (%d)", partition, epoch, po.epoch)}
	}
	accepted, err := s.decide(ctx, po, changes)
	if err != nil {
		return classify(op, err)
	}
	for len(accepted) > 0 {
		part, rest := splitClaim(accepted)
		accepted = rest
		batch, ref, err := s.claim(ctx, partition, po, part)
		if err != nil {
			return classify(op, err)
		}
		if err := s.writeBatch(ctx, batch); err != nil {
			// Claimed, so the partition's next Own finishes it; until
			// then this store holds no epoch (its reads could miss it).
			po.epoch = 0
			return classify(op, fmt.Errorf("write batch %s: %w", ref, err))
		}
		if len(po.seqs) > maxCachedSeqs {
			po.seqs = map[string]int64{}
		}
		for _, in := range batch.Intents {
			po.seqs[in.Change.Conversation.ID] = in.Change.Conversation.LastSeq
		}
	}
	if err := s.raiseHead(ctx, partition, head); err != nil {
		return classify(op, fmt.Errorf("head: %w", err))
	}
	return nil
}

// decide returns the changes to write, in order, without the replays;
// any other change that is not based on its conversation's last seq is a
// conflict.
func (s *Store) decide(ctx context.Context, po *owned, changes []chat.Change) ([]*chat.Change, error) {
	var missing []string
	seen := map[string]bool{}
	for i := range changes {
		cid := changes[i].Conversation.ID
		if _, ok := po.seqs[cid]; !ok && !seen[cid] {
			seen[cid] = true
			missing = append(missing, cid)
		}
	}
	read := make([]int64, len(missing))
	var g errgroup.Group
	g.SetLimit(commitParallelism)
	for i, cid := range missing {
		g.Go(func() error {
			seq, err := s.lastSeq(ctx, cid)
			read[i] = seq
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("read last seq: %w", err)
	}
	last := make(map[string]int64, len(seen))
	for i, cid := range missing {
		last[cid] = read[i]
	}
	var out []*chat.Change
	for i := range changes {
		ch := &changes[i]
		cid := ch.Conversation.ID
		cur, ok := last[cid]
		if !ok {
			cur = po.seqs[cid]
		}
		if n := len(ch.Events); n > 0 && cur >= ch.Events[n-1].Seq {
			if err := s.checkReplay(ctx, ch, cur); err != nil {
				return nil, err
			}
			continue
		}
		if cur != ch.PrevSeq {
			return nil, conflict(cid, cur, ch.PrevSeq)
		}
		if ch.Gateway != "" && !ch.Deadline.IsZero() {
			if floor, ok := po.refused[ch.Gateway]; ok && floor >= ch.Deadline.UnixNano() {
				return nil, refusedErr(cid, ch.Gateway, floor)
			}
		}
		last[cid] = ch.Conversation.LastSeq
		out = append(out, ch)
	}
	return out, nil
}

// splitClaim takes from changes the first part whose record stays under
// maxClaimBytes (at least one change).
func splitClaim(changes []*chat.Change) (part, rest []*chat.Change) {
	size := 0
	for i, ch := range changes {
		n := changeSize(ch)
		if i > 0 && size+n > maxClaimBytes {
			return changes[:i], changes[i:]
		}
		size += n
	}
	return changes, nil
}

// changeSize estimates the encoded size of a change.
func changeSize(ch *chat.Change) int {
	n := 512 + 64*len(ch.Conversation.Members)
	for i := range ch.Events {
		n += 256
		if m := ch.Events[i].Message; m != nil {
			n += len(m.Text) + 256*len(m.Attachments)
		}
	}
	for i := range ch.Messages {
		n += 256 + len(ch.Messages[i].Text) + 256*len(ch.Messages[i].Attachments)
	}
	return n + 256*(len(ch.Memberships)+len(ch.Dedups)+len(ch.Attachments))
}

// claim records changes and claims them for the partition's owner of
// po.epoch; each change gets its own timestamp above every earlier
// claim's.
func (s *Store) claim(ctx context.Context, partition int, po *owned, changes []*chat.Change) (*claimedBatch, string, error) {
	ts := max(time.Now().UnixMicro(), po.lastTS+1)
	batch := &claimedBatch{Intents: make([]*intent, len(changes))}
	for i, ch := range changes {
		batch.Intents[i] = &intent{Change: record.Change{Change: *ch}, TS: ts + int64(i), LastPosition: ch.Conversation.LastPosition, LastActivity: ch.Conversation.LastActivity}
	}
	lastTS := ts + int64(len(changes)) - 1
	raw, err := json.Marshal(batch)
	if err != nil {
		return nil, "", fmt.Errorf("encode batch: %w", err)
	}
	// One row per partition and epoch holds the epoch's newest batch:
	// an owner records a batch only once its previous one is written, so
	// overwriting it loses nothing, and the table stays as small as the
	// number of epochs.
	// The record is written at the batch's own timestamp, which grows
	// with every batch of the partition, so a wall clock that steps back
	// cannot make it lose to the previous batch's record while its claim
	// still wins (the batch would then never be finished).
	ref := newBatchRef(po.epoch, ts)
	if err := s.q(ctx, `INSERT INTO {partition_claims} (partition, epoch, ref, body) VALUES (?, ?, ?, ?) USING TTL ? AND TIMESTAMP ?`,
		partition, po.epoch, ref, string(raw), batchTTL, ts).Exec(); err != nil {
		return nil, "", fmt.Errorf("record batch: %w", err)
	}
	// The latest deadline of each gateway's changes: claims come in log
	// order, where a gateway's deadlines grow, so this never lowers one.
	claimed := map[string]int64{}
	for _, ch := range changes {
		if ch.Gateway != "" && !ch.Deadline.IsZero() {
			claimed[ch.Gateway] = max(claimed[ch.Gateway], ch.Deadline.UnixNano())
		}
	}
	var (
		applied bool
		cur     map[string]any
	)
	for attempt := 0; ; attempt++ {
		cur = map[string]any{}
		applied, err = s.q(ctx, `UPDATE {partition_owners} SET pending = ?, last_ts = ?, claimed = claimed + ? WHERE partition = ? IF epoch = ? AND fences = ?`,
			ref, lastTS, claimed, partition, po.epoch, po.fences).MapScanCAS(cur)
		if err != nil {
			// The claim may or may not have been accepted: the next Own
			// finds it pending, or not.
			po.epoch = 0
			return nil, "", fmt.Errorf("claim: %w", err)
		}
		e, _ := cur["epoch"].(int64)
		if applied || e != po.epoch || attempt >= maxOwnAttempts {
			break
		}
		// Still this store's epoch: a gateway refused commands since
		// (fences moved). Claim again on the new fences unless one of
		// these changes is refused now.
		var (
			fences  *int64
			refused map[string]int64
		)
		if err := s.q(ctx, `SELECT fences, refused FROM {partition_owners} WHERE partition = ?`, partition).
			Consistency(s.serial).Scan(&fences, &refused); err != nil {
			po.epoch = 0
			return nil, "", fmt.Errorf("read refusals: %w", err)
		}
		po.fences, po.refused = fences, refused
		for _, ch := range changes {
			if ch.Gateway == "" || ch.Deadline.IsZero() {
				continue
			}
			if floor, ok := refused[ch.Gateway]; ok && floor >= ch.Deadline.UnixNano() {
				return nil, "", refusedErr(ch.Conversation.ID, ch.Gateway, floor)
			}
		}
	}
	if !applied {
		e, _ := cur["epoch"].(int64)
		stale := po.epoch
		po.epoch = 0
		if e == stale {
			return nil, "", &chat.Error{Code: chat.CodeConflict, Op: "cassandra: commit",
				Message: fmt.Sprintf("partition %d: too much contention on refusals at epoch %d", partition, stale)}
		}
		return nil, "", &chat.Error{Code: chat.CodeConflict, Op: "cassandra: commit",
			Message: fmt.Sprintf("partition %d was taken at epoch %d; this writer holds epoch %d", partition, e, stale)}
	}
	po.lastTS = lastTS
	return batch, ref, nil
}

// checkReplay accepts a change whose events are all stored at the same
// seqs with the same positions and types: the same commands, applied
// again. A change whose seqs hold other events was built on an old
// state, and is a conflict.
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

// refusedErr is the conflict of a change its gateway refused.
func refusedErr(cid, gateway string, floor int64) error {
	return &chat.Error{Code: chat.CodeConflict, Op: "cassandra: commit", Err: chat.ErrRefused,
		Message: fmt.Sprintf("conversation %s: gateway %s refused its commands up to %s", cid, gateway, time.Unix(0, floor).UTC().Format(time.RFC3339Nano))}
}

func conflict(cid string, stored, prev int64) error {
	return &chat.Error{
		Code:    chat.CodeConflict,
		Op:      "cassandra: commit",
		Message: fmt.Sprintf("conversation %s is at seq %d; the change was based on seq %d", cid, stored, prev),
	}
}

// newBatchRef names one recorded batch: its epoch, its first timestamp
// and 64 random bits.
func newBatchRef(epoch, ts int64) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strconv.FormatInt(epoch, 10) + "." + strconv.FormatInt(ts, 10) + "." + hex.EncodeToString(b[:])
}

// finishBatch writes the claimed batch a partition row names as pending.
// When its epoch's record holds another batch (a later one, recorded once
// this one was written) or none (it outlived batchTTL), the claimed batch
// was finished.
func (s *Store) finishBatch(ctx context.Context, partition int, ref string) error {
	head, _, _ := strings.Cut(ref, ".")
	epoch, err := strconv.ParseInt(head, 10, 64)
	if err != nil {
		return fmt.Errorf("claimed batch %q: no epoch", ref)
	}
	var stored, body string
	err = s.q(ctx, `SELECT ref, body FROM {partition_claims} WHERE partition = ? AND epoch = ?`, partition, epoch).Scan(&stored, &body)
	if errors.Is(err, gocql.ErrNotFound) || (err == nil && stored != ref) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read claimed batch %s: %w", ref, err)
	}
	var batch claimedBatch
	if err := json.Unmarshal([]byte(body), &batch); err != nil {
		return fmt.Errorf("decode claimed batch %s: %w", ref, err)
	}
	if err := s.writeBatch(ctx, &batch); err != nil {
		return fmt.Errorf("write claimed batch %s: %w", ref, err)
	}
	return nil
}

// writeBatch writes every row of a claimed batch: conversations side by
// side, each conversation's rows in order. It is idempotent (every row
// carries its change's timestamp), so a batch may be written again, or by
// two writers at once.
func (s *Store) writeBatch(ctx context.Context, batch *claimedBatch) error {
	var order []string
	byConv := map[string][]*intent{}
	for _, in := range batch.Intents {
		cid := in.Change.Conversation.ID
		if _, ok := byConv[cid]; !ok {
			order = append(order, cid)
		}
		byConv[cid] = append(byConv[cid], in)
	}
	var g errgroup.Group
	g.SetLimit(commitParallelism)
	for _, cid := range order {
		g.Go(func() error {
			stmts, err := s.statements(ctx, cid, byConv[cid])
			if err != nil {
				return fmt.Errorf("conversation %s: %w", cid, err)
			}
			if err := s.write(ctx, stmts); err != nil {
				return fmt.Errorf("conversation %s: %w", cid, err)
			}
			return nil
		})
	}
	return g.Wait()
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

// write writes a conversation's statements in batches of at most
// maxBatchBytes, one after the other in order: one batch for an ordinary
// run of changes; a huge one (a group created with hundreds of members)
// goes in several, events in seq order first, so readers see a gap-free
// log. The batches are unlogged: the partition's claim is this store's
// batch log. A batch is complete in the end because its claim names it
// until the next claim, and the partition's next Own writes it again;
// Cassandra's own batch log would only write every change twice more
// (into system.batches and out again). Each Cassandra partition's part of
// a batch (a change's events, say) is still applied at once.
func (s *Store) write(ctx context.Context, stmts []statement) error {
	for len(stmts) > 0 {
		b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
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

// statements lists the writes of a conversation's changes of one claimed
// batch, in order, each at its change's timestamp, and then the
// conversation's new state. A message that one of the changes deletes is
// written without text and attachments into every event of the batch
// that carries it, and scrubbed from the events stored before.
func (s *Store) statements(ctx context.Context, cid string, ins []*intent) ([]statement, error) {
	var stmts []statement
	var ts int64
	add := func(stmt string, args ...any) {
		size := 32
		for _, a := range args {
			if v, ok := a.(string); ok {
				size += len(v)
			} else {
				size += 8
			}
		}
		// USING TIMESTAMP comes last in an INSERT, before SET or WHERE in
		// an UPDATE or DELETE.
		if strings.HasPrefix(stmt, "INSERT") {
			args = append(args, ts)
		} else {
			args = append([]any{ts}, args...)
		}
		stmts = append(stmts, statement{s.stmt(stmt), args, size})
	}

	deleted := map[string]bool{}
	own := map[int64]bool{}
	for _, in := range ins {
		for _, m := range in.Change.Messages {
			if m.Deleted {
				deleted[m.ID] = true
			}
		}
		for i := range in.Change.Events {
			own[in.Change.Events[i].Seq] = true
		}
	}
	for _, in := range ins {
		ch := &in.Change.Change
		ts = in.TS
		for i := range ch.Events {
			ev := ch.Events[i]
			if ev.Message != nil && deleted[ev.Message.ID] {
				ev.Message = scrubbed(ev.Message)
			}
			data, err := record.EncodeRow(&ev)
			if err != nil {
				return nil, fmt.Errorf("encode event %d: %w", ev.Seq, err)
			}
			bucket := bucketOf(ev.Seq)
			add(`INSERT INTO {events} (conversation_id, bucket, seq, position, type, data) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`,
				cid, bucket, ev.Seq, ev.Position, ev.Type, string(data))
			add(`INSERT INTO {event_positions} (conversation_id, bucket, position, seq) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`,
				cid, bucket, ev.Position, ev.Seq)
			// The created event of a message sits at the message's own seq,
			// which scrub knows; only later events that carry it (edits) are
			// indexed, which spares every send one more row.
			if ev.Message != nil && !deleted[ev.Message.ID] && ev.Seq != ev.Message.Seq {
				add(`INSERT INTO {message_events} (conversation_id, message_id, seq) VALUES (?, ?, ?) USING TIMESTAMP ?`, cid, ev.Message.ID, ev.Seq)
			}
		}
		for _, m := range ch.Messages {
			if m.Deleted {
				m.Text = ""
				m.Attachments = []chat.Attachment{}
			}
			data, err := record.EncodeRow(&m)
			if err != nil {
				return nil, fmt.Errorf("encode message %s: %w", m.ID, err)
			}
			add(`INSERT INTO {messages} (conversation_id, bucket, seq, data) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`, cid, bucketOf(m.Seq), m.Seq, string(data))
			add(`INSERT INTO {message_ids} (conversation_id, message_id, seq) VALUES (?, ?, ?) USING TIMESTAMP ?`, cid, m.ID, m.Seq)
			if m.Deleted {
				if err := s.scrub(ctx, cid, m.ID, m.Seq, own, add); err != nil {
					return nil, err
				}
			}
		}
		for i := range ch.Memberships {
			m := &ch.Memberships[i]
			data, err := record.EncodeRow(m)
			if err != nil {
				return nil, fmt.Errorf("encode membership: %w", err)
			}
			add(`INSERT INTO {memberships} (user_id, conversation_id, data) VALUES (?, ?, ?) USING TIMESTAMP ?`, m.UserID, cid, string(data))
		}
		joined, left := ch.MemberMoves()
		for _, uid := range joined {
			add(`INSERT INTO {conversation_members} (conversation_id, user_id) VALUES (?, ?) USING TIMESTAMP ?`, cid, uid)
		}
		for _, uid := range left {
			add(`DELETE FROM {conversation_members} USING TIMESTAMP ? WHERE conversation_id = ? AND user_id = ?`, cid, uid)
		}
		for _, d := range ch.Dedups {
			add(`INSERT INTO {send_dedups} (conversation_id, sender_id, client_id, message_id) VALUES (?, ?, ?, ?) USING TTL `+strconv.Itoa(s.dedupTTL)+` AND TIMESTAMP ?`,
				cid, d.SenderID, d.ClientID, d.MessageID)
		}
		for i := range ch.Attachments {
			a := &ch.Attachments[i]
			data, err := record.EncodeRow(a)
			if err != nil {
				return nil, fmt.Errorf("encode attachment: %w", err)
			}
			add(`INSERT INTO {attachments} (id, data) VALUES (?, ?) USING TIMESTAMP ?`, a.ID, string(data))
		}
	}
	last := ins[len(ins)-1]
	conv := last.Change.Conversation
	conv.LastPosition, conv.LastActivity = last.LastPosition, last.LastActivity
	state, err := record.EncodeRow(&conv)
	if err != nil {
		return nil, fmt.Errorf("encode conversation: %w", err)
	}
	ts = last.TS
	add(`INSERT INTO {conversations} (id, last_seq, state) VALUES (?, ?, ?) USING TIMESTAMP ?`, cid, last.Change.Conversation.LastSeq, string(state))
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
		if err := record.DecodeRow([]byte(data), &ev); err != nil {
			return fmt.Errorf("scrub message %s: decode event %d: %w", mid, seq, err)
		}
		if ev.Message != nil && ev.Message.ID == mid {
			ev.Message = scrubbed(ev.Message)
			raw, err := record.EncodeRow(&ev)
			if err != nil {
				return err
			}
			add(`UPDATE {events} USING TIMESTAMP ? SET data = ? WHERE conversation_id = ? AND bucket = ? AND seq = ?`, string(raw), cid, bucketOf(seq), seq)
		}
	}
	add(`DELETE FROM {message_events} USING TIMESTAMP ? WHERE conversation_id = ? AND message_id = ?`, cid, mid)
	return nil
}

// scrubbed is a copy of m without its content.
func scrubbed(m *chat.Message) *chat.Message {
	c := *m
	c.Text = ""
	c.Attachments = []chat.Attachment{}
	return &c
}
