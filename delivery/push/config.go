package push

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/delivery/presence"
)

// Defaults of Config.
const (
	// DefaultCollapse is the API's "at most one push per device per
	// conversation per 10 s".
	DefaultCollapse = 10 * time.Second
	// DefaultDelay is how long after a message is read the push role
	// decides whether its recipients are online, so that an online record
	// published a moment before the message reaches the role first.
	DefaultDelay = time.Second
	// DefaultWorkers is how many pushes are worked on at once.
	DefaultWorkers = 16
	// DefaultSubject is the VAPID subject when none is configured.
	DefaultSubject = "https://github.com/parleychat/parley"
	// DefaultMaxAge: messages older than this when the role reads them
	// get no push (a new consumer group starts at the log's beginning; a
	// push about a message hours old would be noise).
	DefaultMaxAge = 2 * time.Minute
	// DefaultRetryBase is the first retry's backoff; each retry doubles it.
	DefaultRetryBase = time.Second
)

// Config holds the push role's settings. The VAPID keys and AllowLoopback
// are the gateway's (--push.vapid-*, --push.allow-loopback), copied in by
// cmd, so both roles agree on them.
type Config struct {
	// WebhookURL is the operator's push gateway (FCM, APNs …) that webhook
	// devices are delivered to; empty: webhook devices get no push.
	WebhookURL string
	// WebhookSecret signs webhooks, Standard Webhooks style: "whsec_"
	// followed by the base64 of the key.
	WebhookSecret string
	// Preview adds the text's first 100 characters to the payload.
	Preview bool
	// Subject is the VAPID "sub" claim: a mailto: or https: contact for
	// the push services.
	Subject string
	// CAFile is a PEM file of extra certificate authorities that Web Push
	// endpoints may be signed by (a self-hosted push server, tests).
	CAFile string
	// Workers is how many pushes are worked on at once.
	Workers int

	// Set by cmd from the gateway's push settings.
	VAPIDPublicKey  string
	VAPIDPrivateKey string
	AllowLoopback   bool

	// Timings (--push.collapse and so on). Collapse is the API's "at most
	// one push per device per conversation per 10 s": change it only to
	// shorten tests. Zero: the default.
	Collapse time.Duration
	// Delay is how long after reading a message the role looks at who is
	// online (DefaultDelay).
	Delay time.Duration
	// MaxAge: older messages get no push (DefaultMaxAge).
	MaxAge time.Duration
	// Settle is the presence View's start-up wait (presence.DefaultSettle).
	Settle time.Duration
	// RetryBase is the first retry's backoff (DefaultRetryBase), doubling.
	RetryBase time.Duration
}

// RegisterFlags registers the push role's flags on fs.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.WebhookURL, "push.webhook-url", "", "URL of your push gateway (for FCM, APNs …): webhook devices are POSTed there, signed with --push.webhook-secret")
	fs.StringVar(&c.WebhookSecret, "push.webhook-secret", "", `secret that signs push webhooks (Standard Webhooks: "whsec_" + base64 of 24-64 random bytes)`)
	fs.BoolVar(&c.Preview, "push.preview", false, "include the first 100 characters of a message's text in pushes (they pass through the push services)")
	fs.StringVar(&c.Subject, "push.vapid-subject", DefaultSubject, "VAPID subject: a mailto: or https: URL where push services can reach the operator")
	fs.StringVar(&c.CAFile, "push.ca-file", "", "PEM file of extra certificate authorities trusted for Web Push endpoints (a self-hosted push server)")
	fs.IntVar(&c.Workers, "push.workers", DefaultWorkers, "pushes worked on at once by the push role")
	fs.DurationVar(&c.Collapse, "push.collapse", DefaultCollapse, "at most one push per device and conversation per this long (API.md fixes 10s; shorten only for tests)")
	fs.DurationVar(&c.Delay, "push.delay", DefaultDelay, "how long after reading a message the push role decides whether its recipients are online")
	fs.DurationVar(&c.MaxAge, "push.max-age", DefaultMaxAge, "messages older than this when the push role reads them get no push")
	fs.DurationVar(&c.Settle, "push.settle", presence.DefaultSettle, "how long the push role's presence view waits at start for the gateways' presence before trusting it")
	fs.DurationVar(&c.RetryBase, "push.retry-base", DefaultRetryBase, "backoff before a failed push's first retry, doubling with each retry")
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if (c.WebhookURL == "") != (c.WebhookSecret == "") {
		return errors.New("push.webhook-url and push.webhook-secret go together")
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("push.webhook-url %q must be an http or https URL", c.WebhookURL)
		}
		if _, err := webhookKey(c.WebhookSecret); err != nil {
			return err
		}
	}
	if c.Subject != "" && !strings.HasPrefix(c.Subject, "mailto:") && !strings.HasPrefix(c.Subject, "https:") {
		return errors.New("push.vapid-subject must be a mailto: or https: URL")
	}
	if c.Workers < 1 {
		return errors.New("push.workers must be at least 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"push.collapse", c.Collapse}, {"push.delay", c.Delay}, {"push.max-age", c.MaxAge}, {"push.settle", c.Settle}, {"push.retry-base", c.RetryBase}} {
		if d.v < 0 {
			return fmt.Errorf("%s must not be negative (0 means its default)", d.name)
		}
	}
	if c.CAFile != "" {
		if _, err := loadCAs(c.CAFile); err != nil {
			return err
		}
	}
	return nil
}

// webhookKey decodes a Standard Webhooks secret.
func webhookKey(secret string) ([]byte, error) {
	raw, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return nil, errors.New(`push.webhook-secret must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil || len(key) < 16 || len(key) > 64 {
		return nil, errors.New(`push.webhook-secret must be "whsec_" + the base64 of 16-64 bytes`)
	}
	return key, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("push.ca-file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("push.ca-file %s holds no PEM certificate", file)
	}
	return pool, nil
}

func (c Config) withDefaults() Config {
	if c.Collapse <= 0 {
		c.Collapse = DefaultCollapse
	}
	if c.Delay <= 0 {
		c.Delay = DefaultDelay
	}
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	return c
}
