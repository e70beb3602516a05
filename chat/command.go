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

// Command is a request to change one conversation. Its bytes in the
// commands log are package record's versioned encoding, not these tags.
type Command struct {
	ID             string    `json:"id"`
	Gateway        string    `json:"gateway,omitempty"`
	Op             string    `json:"op"`
	ConversationID string    `json:"conversation_id"`
	Actor          string    `json:"actor"`
	At             time.Time `json:"at"`
	// Deadline is when the gateway stops waiting for the result and
	// answers 503 (zero: nobody waits). The sequencer refuses a command it
	// reaches well after its deadline instead of applying it, so that a
	// log that is catching up skips what nobody waits for; a 503 usually
	// means "not done", and a retry with the same client_id is safe either
	// way.
	Deadline time.Time `json:"deadline,omitzero"`
	// Trace is the W3C traceparent of the span that submitted the command
	// (empty when tracing is off): the sequencer's span continues it.
	Trace string `json:"trace,omitempty"`

	Kind        string   `json:"kind,omitempty"`
	Title       *string  `json:"title,omitempty"`
	Members     []string `json:"members,omitempty"`
	ClientID    string   `json:"client_id,omitempty"`
	Text        string   `json:"text,omitempty"`
	Attachments []string `json:"attachments,omitempty"`
	ReplyTo     string   `json:"reply_to,omitempty"`
	MessageID   string   `json:"message_id,omitempty"`
	IfMatch     int      `json:"if_match,omitempty"`
	Emoji       string   `json:"emoji,omitempty"`
	Seq         int64    `json:"seq,omitempty"`
	UserID      string   `json:"user_id,omitempty"`

	AttachmentID string `json:"attachment_id,omitempty"`
	ThumbnailKey string `json:"thumbnail_key,omitempty"`
}

// Result is the sequencer's answer to one command.
type Result struct {
	// Created is true when the command made something new (201 rather than 200).
	Created      bool          `json:"created,omitempty"`
	Message      *Message      `json:"message,omitempty"`
	Conversation *Conversation `json:"conversation,omitempty"`
	ErrCode      string        `json:"err_code,omitempty"`
	ErrMessage   string        `json:"err_message,omitempty"`
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
// Its bytes in the events log are package record's versioned encoding.
type Sequenced struct {
	CommandID string  `json:"command_id"`
	Gateway   string  `json:"gateway,omitempty"`
	Events    []Event `json:"events,omitempty"`
	Result    Result  `json:"result"`
	// Recipients are the users who receive Events: the members after the
	// command plus a user it removed, so fan-out needs no lookup.
	Recipients []string `json:"recipients,omitempty"`
	// Trace is the W3C traceparent of the sequencer's span for the command
	// (empty when its command had none): the gateways' spans for the ack
	// and the recipients' sockets continue it.
	Trace string `json:"trace,omitempty"`
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
