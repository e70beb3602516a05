package chat

import "time"

// Command operations. Every change to a conversation is a command appended
// to the commands log (key = conversation id) and applied by the
// conversation's sequencer in log order.
const (
	OpCreate       = "create"        // Kind, Title, Members (create conversation)
	OpSend         = "send"          // ClientID, Text, Attachments, ReplyTo
	OpEdit         = "edit"          // MessageID, Text, IfMatch
	OpDelete       = "delete"        // MessageID
	OpReact        = "react"         // MessageID, Emoji
	OpUnreact      = "unreact"       // MessageID, Emoji
	OpRead         = "read"          // Seq
	OpRename       = "rename"        // Title
	OpAddMember    = "add_member"    // UserID
	OpRemoveMember = "remove_member" // UserID
	OpThumbnail    = "thumbnail"     // MessageID, AttachmentID, ThumbnailKey (media role)
)

// Command is a request to change one conversation. It has no JSON form of
// its own: its bytes in the commands log are package record's versioned
// encoding (commandV1).
type Command struct {
	ID             string
	Gateway        string
	Op             string
	ConversationID string
	Actor          string
	At             time.Time
	// Deadline is when the gateway stops waiting for the result and
	// answers 503 (zero: nobody waits). The sequencer refuses a command it
	// reaches well after its deadline instead of applying it, so that a
	// log that is catching up skips what nobody waits for; a 503 usually
	// means "not done", and a retry with the same client_id is safe either
	// way.
	Deadline time.Time
	// Trace is the W3C traceparent of the span that submitted the command
	// (empty when tracing is off): the sequencer's span continues it.
	Trace string

	Kind        string
	Title       *string
	Members     []string
	ClientID    string
	Text        string
	Attachments []string
	ReplyTo     string
	MessageID   string
	IfMatch     int
	Emoji       string
	Seq         int64
	UserID      string

	AttachmentID string
	ThumbnailKey string
}

// Result is the sequencer's answer to one command.
type Result struct {
	// Created is true when the command made something new (201 rather than 200).
	Created      bool
	Message      *Message
	Conversation *Conversation
	ErrCode      string
	ErrMessage   string
}

// Err returns the result's error, nil on success.
func (r *Result) Err() error {
	if r.ErrCode == "" {
		return nil
	}
	return &Error{Code: r.ErrCode, Message: r.ErrMessage}
}

// Sequenced is what the sequencer appends to the events log for each
// command: the durable events it produced (possibly none) and the result
// for the gateway that is waiting on CommandID.
//
// It has no JSON form of its own, nor has Result: their bytes in the
// events log are package record's versioned encoding (sequencedV1).
type Sequenced struct {
	CommandID string
	Gateway   string
	Events    []Event
	Result    Result
	// Recipients are the users who receive Events: the members after the
	// command plus a user it removed, so fan-out needs no lookup.
	Recipients []string
	// Trace is the W3C traceparent of the sequencer's span for the command
	// (empty when its command had none): the gateways' spans for the ack
	// and the recipients' sockets continue it.
	Trace string
}

// ExpiryGrace is how long after its Deadline a command is still applied:
// the deadline is on the gateway's clock and the check on the
// sequencer's, and clocks that disagree by less than this never make the
// sequencer refuse what a gateway still waits for. Past it the sequencer
// refuses the command with CodeUnavailable; the gateway's wait is planned
// around the same grace.
const ExpiryGrace = 2 * time.Second

// Expired reports whether cmd reached the sequencer at now too late to be
// applied: more than ExpiryGrace after its Deadline.
func (cmd *Command) Expired(now time.Time) bool {
	return !cmd.Deadline.IsZero() && now.After(cmd.Deadline.Add(ExpiryGrace))
}
