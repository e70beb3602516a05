package push

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// TestTimingsAreFlags: the push role's timings are set by its own flags
// (with their defaults when unset), and a negative one is refused by name.
func TestTimingsAreFlags(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--push.collapse=2s", "--push.delay=30ms", "--push.max-age=1m", "--push.settle=40ms", "--push.retry-base=50ms"}); err != nil {
		t.Fatal(err)
	}
	if c.Collapse != 2*time.Second || c.Delay != 30*time.Millisecond || c.MaxAge != time.Minute || c.Settle != 40*time.Millisecond || c.RetryBase != 50*time.Millisecond {
		t.Errorf("flags set %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid timings refused: %v", err)
	}
	var d Config
	fs = flag.NewFlagSet("push", flag.ContinueOnError)
	d.RegisterFlags(fs)
	if d.Collapse != DefaultCollapse || d.Delay != DefaultDelay || d.MaxAge != DefaultMaxAge || d.RetryBase != DefaultRetryBase || d.Settle <= 0 {
		t.Errorf("defaults %+v", d)
	}
	d.Delay = -time.Second
	if err := d.Validate(); err == nil || !strings.Contains(err.Error(), "push.delay") {
		t.Errorf("a negative delay: %v, want an error naming push.delay", err)
	}
}
