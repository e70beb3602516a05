package chat

import (
	"context"
	"errors"
	"io"
	"time"
)

// Topics of the Log.
const (
	TopicCommands = "commands"
	TopicEvents   = "events"
	// TopicEphemeral carries what is not stored: presence and typing,
	// shared by the gateways (read with Subscribe only).
	TopicEphemeral = "ephemeral"
)

// Record is one entry of a Log topic.
type Record struct {
	Key       string
	Value     []byte
	Partition int
	Offset    int64
}

// Log is a partitioned, append-only log (Kafka in distributed mode).
//
// Guarantees: a record goes to partition PartitionOf(Key, Partitions());
// within a partition, offsets grow strictly and never go back, also across
// restarts; records of one Append call, and of sequential calls, keep their
// order per partition.
type Log interface {
	// Partitions is the fixed partition count of every topic.
	Partitions() int
	// Append writes recs to topic and returns once the log accepted them,
	// with Partition and Offset filled in. Unavailable when the log is down.
	Append(ctx context.Context, topic string, recs ...*Record) error
	// Consume joins consumer group group on topic and calls handle with
	// batches of records of one partition in offset order. Calls for one
	// partition never overlap; calls for different partitions may run at
	// once (handle must be safe for that). Each partition
	// is handled by one member of the group at a time; a batch's offsets
	// are committed only after handle returns nil, so after a crash or a
	// rebalance the uncommitted records are handled again (at least once).
	// A handler may hold a batch's commit past its return (HoldCommit), to
	// finish its last step beside the next batch.
	// A new group starts at the beginning of what the log retains. Consume
	// returns when ctx is done, or the error of handle.
	Consume(ctx context.Context, topic, group string, handle func(ctx context.Context, partition int, recs []Record) error) error
	// Subscribe reads every partition of topic from its current end,
	// without a group (a broadcast read: every subscriber sees every
	// record), calling handle with batches of one partition in offset
	// order, until ctx is done. ready, if not nil, is called once the
	// start offsets are fixed.
	Subscribe(ctx context.Context, topic string, ready func(), handle func(partition int, recs []Record)) error
	// Ping reports whether the log answers.
	Ping(ctx context.Context) error
	Close() error
}

// Dedup remembers a send's client_id so a retry answers the original message.
type Dedup struct {
	ConversationID string
	SenderID       string
	ClientID       string
	MessageID      string
}

// Change is everything one command changed in one conversation. The
// sequencer builds it; the Store writes it.
type Change struct {
	// Conversation is the conversation's new state (LastSeq, LastPosition,
	// LastActivity, Members, Title …).
	Conversation Conversation
	// PrevSeq is the LastSeq the sequencer based the change on. Commit
	// fails with CodeConflict when the stored LastSeq differs (the
	// partition's epoch fences other owners; this decides between Commits
	// of one owner).
	PrevSeq int64
	// Events are the new durable events, seqs PrevSeq+1 … in order.
	Events []Event
	// Messages are new or updated messages, stored whole. A deleted
	// message is stored as its tombstone, so its text is gone for good.
	Messages []Message
	// Memberships are new or updated membership rows.
	Memberships []Membership
	// Dedups are new client_id records.
	Dedups []Dedup
	// Attachments are attachment records bound to a message (posted) or
	// given a thumbnail.
	Attachments []AttachmentRecord
	// Gateway and Deadline are those of the command that made the change
	// (Command.Gateway, Command.Deadline): a gateway's Refuse fences
	// them. A change without either is never refused.
	Gateway  string
	Deadline time.Time
}

// MessagePage selects a page of history: the newest Limit messages, those
// before a seq (Before > 0), or those after a seq in ascending order from
// the oldest (After > 0, or Forward for "after seq 0").
type MessagePage struct {
	Before  int64
	After   int64
	Forward bool
	Limit   int
}

// Store is the durable state: conversations, memberships, the event log,
// materialized messages, dedup records and deployment metadata (Cassandra
// in distributed mode).
//
// Writers are fenced per log partition: a writer takes a partition with
// Own, which hands out a new epoch, and commits with it. Own first
// finishes whatever an earlier epoch's Commit left half-written, so the
// new owner's reads see every change that can still take effect; from
// then on Commits of earlier epochs fail with CodeConflict and write
// nothing. A stale sequencer after a rebalance therefore cannot write,
// whatever it read. Within an epoch a change is also fenced by PrevSeq
// (below), so Commits of one owner that race are decided too.
//
// Guarantees: Commit is atomic per Change and durable when it returns;
// a Change whose events are already stored (same conversation and seqs) is
// a no-op, so replays are idempotent. Reads see every Commit that returned
// nil. A Commit that failed may still take effect later, until the
// partition's next Own, which completes it or rules it out: reads after
// Own returns see every change of the partition that will ever be stored.
// Missing things are CodeNotFound errors.
//
// A gateway that stops waiting for its commands fences them with Refuse:
// per partition and gateway, a refusal floor that every later Commit
// checks at the same point where it checks the epoch, so a command is
// either stored before the floor was raised (and Refuse says so) or never.
type Store interface {
	// Own makes the caller the writer of partition and returns its epoch,
	// above every epoch handed out for partition before (also by other
	// processes and before restarts). Every change that a Commit of an
	// earlier epoch may still store is stored when Own returns, and every
	// later Commit of an earlier epoch fails with CodeConflict.
	Own(ctx context.Context, partition int) (epoch int64, err error)
	// Commit durably writes changes in order; partition is the partition
	// they belong to, epoch the one Own handed out for it, and head the
	// highest position among their events. An epoch that is not the
	// partition's newest is a CodeConflict, and nothing is written.
	// A change whose Gateway has a refusal floor at or after its Deadline
	// (Refuse) is a CodeConflict too, which wraps ErrRefused, and nothing
	// of it is written (changes before it in the same call may be); the
	// epoch stays the writer's.
	Commit(ctx context.Context, partition int, epoch, head int64, changes []Change) error
	// Refuse makes every change of gateway with a Deadline at or before
	// deadline unstorable in partition from now on (it raises the
	// gateway's refusal floor there, never lowers it), and reports true,
	// unless a Commit has already stored (or, in Cassandra, claimed) a
	// change of gateway with a Deadline at or after deadline: then it
	// reports false and changes nothing. The check and the raise are one
	// atomic step against Commits. A gateway gives the commands it
	// appends to a partition strictly growing deadlines, in log order, so
	// true means its command with that deadline is not stored and never
	// will be, and false means the sequencer has passed it: its result
	// follows in the partition's order. It is not fenced by epoch (any
	// process may call it).
	Refuse(ctx context.Context, partition int, gateway string, deadline time.Time) (bool, error)
	// Refusals returns the refusal floors of partition by gateway
	// (gateways that never refused are absent).
	Refusals(ctx context.Context, partition int) (map[string]time.Time, error)
	// Conversation returns a conversation with its members.
	Conversation(ctx context.Context, id string) (Conversation, error)
	// Memberships returns every membership of user, active or left.
	Memberships(ctx context.Context, userID string) ([]Membership, error)
	// Membership returns one membership row.
	Membership(ctx context.Context, conversationID, userID string) (Membership, error)
	// Members returns up to limit active members of a conversation whose
	// user ids sort after after ("" for the first page), in user-id order.
	// They are kept in rows of their own, written from the Memberships of
	// each Change (a member joins with an active row and leaves with an
	// inactive one), so a page costs no more in a conversation of
	// thousands. An unknown conversation has no members (not an error);
	// limit must be positive.
	Members(ctx context.Context, conversationID, after string, limit int) ([]string, error)
	// Events returns up to limit events of a conversation with seq > afterSeq,
	// in seq order. A conversation's seqs run 1, 2, 3… with no gap (the
	// sequencer assigns them so), which a resume relies on to count the
	// events it would replay with a few one-event reads.
	Events(ctx context.Context, conversationID string, afterSeq int64, limit int) ([]Event, error)
	// EventsAfter returns up to limit events of a conversation with
	// afterPosition < position <= upTo, in seq (= position) order.
	EventsAfter(ctx context.Context, conversationID string, afterPosition, upTo int64, limit int) ([]Event, error)
	// Messages returns a page of messages in ascending seq order and
	// whether more exist in the paging direction.
	Messages(ctx context.Context, conversationID string, page MessagePage) ([]Message, bool, error)
	// Message returns one message by id.
	Message(ctx context.Context, conversationID, messageID string) (Message, error)
	// Dedup returns the message id recorded for a client_id.
	Dedup(ctx context.Context, conversationID, senderID, clientID string) (string, error)
	// Dedups looks up several client_ids of one sender at once: the
	// message id of each that has a record, by client_id (the others are
	// absent from the map).
	Dedups(ctx context.Context, conversationID, senderID string, clientIDs []string) (map[string]string, error)
	// SenderDedups returns every dedup record of senderID in
	// conversationID (the message id by client_id) and true, when there
	// are at most limit of them; otherwise limit of them and false. A
	// writer that holds the conversation's partition learns a sender's
	// records with it once per epoch: every record written after it is
	// the writer's own Commit's (a record may expire meanwhile; the
	// writer may then still answer with its message, never the reverse).
	// limit must be positive.
	SenderDedups(ctx context.Context, conversationID, senderID string, limit int) (map[string]string, bool, error)
	// PutAttachment creates or replaces an attachment record (an upload
	// that is not posted yet).
	PutAttachment(ctx context.Context, a AttachmentRecord) error
	// Attachment returns an attachment record by id.
	Attachment(ctx context.Context, id string) (AttachmentRecord, error)
	// SetUserName records a user's display name in its profile. A claimed
	// name (the name claim of a token or a dev sign-in) is the profile's
	// name only until the user sets one (claimed false): a later claim
	// never replaces a set name, while a later set name replaces both.
	// Writing the same name again is a no-op in effect. It writes no
	// Change and is not fenced: profiles are not part of the event log.
	SetUserName(ctx context.Context, userID, name string, claimed bool) error
	// Users returns the profiles of those ids that have one (a claimed or
	// set name), by id; ids without a profile are absent from the map.
	Users(ctx context.Context, ids []string) (map[string]User, error)
	// PutSettings creates or replaces userID's own settings of
	// conversationID (the caller checks the membership). Settings are rows
	// of their own, never touched by Commit.
	PutSettings(ctx context.Context, userID, conversationID string, s ConversationSettings) error
	// Settings returns userID's settings by conversation id; conversations
	// never set are absent (the zero settings apply).
	Settings(ctx context.Context, userID string) (map[string]ConversationSettings, error)
	// PutDevice creates or replaces the device (d.UserID, d.ID) and reports
	// whether it was new. A new device beyond MaxDevicesPerUser is a
	// CodeConflict. When it replaces one, the stored CreatedAt is kept.
	PutDevice(ctx context.Context, d Device) (created bool, err error)
	// Devices returns userID's devices in device-id order (none: empty).
	Devices(ctx context.Context, userID string) ([]Device, error)
	// DeleteDevice removes one of userID's devices; CodeNotFound when
	// userID has no device of that id.
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	// Heads returns, per partition, the highest committed position (0 if none).
	Heads(ctx context.Context, partitions int) ([]int64, error)
	// Meta returns the metadata value of key, setting it to value first if
	// it is unset (set-if-absent; every caller gets the winning value).
	Meta(ctx context.Context, key, value string) (string, error)
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	Close() error
}

// ErrRefused is wrapped by the conflict of a Commit that holds a change
// its gateway refused (Store.Refuse): the writer reads the floors again
// (Store.Refusals) and refuses those commands, keeping its epoch.
var ErrRefused = errors.New("a change's gateway refused it")

// SearchQuery is a search request, already authorized: ConversationIDs is
// the caller's membership at query time and is always applied as a filter.
type SearchQuery struct {
	Text            string
	ConversationIDs []string
	SenderID        string
	After, Before   time.Time
	HasAttachment   bool
	Limit           int
	PageToken       string
}

// SearchHit is one result.
type SearchHit struct {
	ConversationID string
	MessageID      string
	Highlights     []string
}

// Index is full-text search over messages (Elasticsearch in distributed
// mode). Guarantees: Put replaces a message's document (an edit is found by
// its new text only); Delete removes it for good; Search never returns a
// message outside q.ConversationIDs.
type Index interface {
	Put(ctx context.Context, msgs []Message) error
	Delete(ctx context.Context, conversationID, messageID string) error
	Search(ctx context.Context, q SearchQuery) ([]SearchHit, string, error)
	Ping(ctx context.Context) error
	Close() error
}

// Blobs stores attachment bytes behind signed URLs (MinIO/S3 in
// distributed mode). Guarantees: an upload URL accepts exactly the declared
// size and content type until it expires, and writes at most once: an
// upload to a key that already holds a blob is refused (4xx) and changes
// nothing, so the bytes of an attachment, once uploaded (and posted),
// never change; a download URL expires. Put (server-side) replaces.
type Blobs interface {
	UploadURL(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (url string, headers map[string]string, err error)
	DownloadURL(ctx context.Context, key, name, contentType string, ttl time.Duration) (string, error)
	Put(ctx context.Context, key, contentType string, r io.Reader, size int64) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Ping(ctx context.Context) error
	Close() error
}

// ConversationScanner lists every conversation of a Store, for
// maintenance that must visit them all (`parley reindex`). It is not part
// of Store: the serving path never needs it.
type ConversationScanner interface {
	// ConversationIDs returns up to limit conversation ids that come after
	// after ("" for the first page) in the adapter's own stable order;
	// passing the last id of a page gets the next one, and an empty page
	// is the end. Conversations created during a scan may be missed.
	ConversationIDs(ctx context.Context, after string, limit int) ([]string, error)
}
