package presence

import (
	"errors"
	"flag"
	"time"
)

// Defaults of Config.
const (
	// DefaultMaxMembers is the largest conversation whose members hear of
	// each other's presence without asking.
	DefaultMaxMembers = 100
	// DefaultGrace is how long a user stays online after its last
	// connection closes (API: 10 s), so that a quick reconnect does not flap.
	DefaultGrace = 10 * time.Second
	// DefaultWindow is the coalescing window: at most one presence event
	// per user per window.
	DefaultWindow = time.Second
	// DefaultHeartbeat is how often a gateway says it is alive.
	DefaultHeartbeat = 3 * time.Second
)

// MaxWatch is the most user ids one presence.watch frame may name.
const MaxWatch = 256

// Config holds the presence settings of a gateway.
type Config struct {
	// MaxMembers: presence events go automatically only among members of
	// conversations with at most this many members.
	MaxMembers int
	// Grace is how long a user stays online after its last connection
	// closes, Window the coalescing window of presence events, and
	// Heartbeat how often a gateway says it is alive (one not heard of for
	// four heartbeats is taken for dead). The API promises the defaults;
	// tests shorten them. Zero means the default.
	Grace     time.Duration
	Window    time.Duration
	Heartbeat time.Duration
}

// RegisterFlags registers the presence flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.MaxMembers, "presence.max-members", DefaultMaxMembers, "presence events go automatically only among members of conversations up to this size; in larger ones clients ask with presence.watch")
	fs.DurationVar(&c.Grace, "presence.grace", DefaultGrace, "how long a user stays online after its last connection closes (the API promises 10s)")
	fs.DurationVar(&c.Window, "presence.window", DefaultWindow, "at most one presence event per user per window")
	fs.DurationVar(&c.Heartbeat, "presence.heartbeat", DefaultHeartbeat, "how often a gateway tells the others it is alive; one silent for four heartbeats is taken for dead")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.MaxMembers < 1 {
		return errors.New("presence.max-members must be at least 1")
	}
	if c.Grace < 0 || c.Window < 0 || c.Heartbeat < 0 {
		return errors.New("presence.grace, presence.window and presence.heartbeat must not be negative")
	}
	return nil
}

// withDefaults fills unset fields.
func (c Config) withDefaults() Config {
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	return c
}
