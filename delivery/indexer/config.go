package indexer

import (
	"errors"
	"flag"
	"time"
)

// DefaultInterval is the least time between two Puts of one partition's
// messages: about a tenth of the 2 s within which the API promises a
// message is searchable.
const DefaultInterval = 100 * time.Millisecond

// MaxInterval is the largest Interval accepted, so that a message is still
// searchable within the API's 2 s with time to spare for the Index itself.
const MaxInterval = time.Second

// Config holds the indexer's settings.
type Config struct {
	// Interval is the least time between two Puts to the Index from one
	// partition. A message arriving after a quiet spell is indexed at once;
	// under load the records that arrive meanwhile wait for the next Put,
	// so each Put carries many messages instead of one. An Index such as
	// Bleve makes a segment per Put and merges segments in the background,
	// so one Put per message costs it far more than one per hundred. Zero
	// puts as often as batches arrive.
	Interval time.Duration
}

// RegisterFlags registers the indexer's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Interval, "indexer.interval", DefaultInterval, "least time between two index writes of one partition (batches the messages that arrive meanwhile; at most 1s, 0 writes each batch at once; parley serve makes it 500ms with the embedded index unless set)")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Interval < 0 || c.Interval > MaxInterval {
		return errors.New("indexer.interval must be within [0s, 1s]")
	}
	return nil
}
