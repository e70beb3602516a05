package push

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/parleychat/parley/chat"
)

// webPushTTL is how long a push service keeps a push for a device that is
// not reachable (RFC 8030 TTL): a day-old "new message" still tells the
// user something; an older one the app learns of on its own.
const webPushTTL = 24 * 60 * 60

// webPushRecordSize is the aes128gcm record size: every push is padded to
// it, so its length tells a push service nothing of the text.
const webPushRecordSize = 4096

// webPushSender delivers to Web Push subscriptions (RFC 8030), encrypted
// (RFC 8291) and signed with VAPID (RFC 8292).
type webPushSender struct {
	cfg    Config
	client *http.Client
}

func newWebPushSender(cfg Config) (*webPushSender, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := loadCAs(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		tlsConf.RootCAs = pool
	}
	allowLoopback := cfg.AllowLoopback
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		// The address is checked when it is dialled, after the name was
		// resolved, so a name that resolved to a public address when the
		// device was registered and to a private one now (DNS rebinding)
		// is refused too.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !PublicAddr(ap.Addr(), allowLoopback) {
				return fmt.Errorf("%w: %s", errBlocked, address)
			}
			return nil
		},
	}
	tr := &http.Transport{
		// Never through a proxy: the check above must see the endpoint's
		// own address.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: sendTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &webPushSender{cfg: cfg, client: &http.Client{
		Transport: tr,
		Timeout:   sendTimeout,
		// A push service answers; it does not send us elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// checkEndpoint is the registration rule again, at send time: an https
// URL without credentials. The address is checked at dial time.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" || u.User != nil {
		return fmt.Errorf("%w: not an https URL", errBlocked)
	}
	return nil
}

// topic is the RFC 8030 Topic of a conversation's pushes: a push service
// replaces an undelivered push of the same topic with the newer one. At
// most 32 characters of the base64url alphabet, and not the conversation
// id itself, which the push service has no need to see.
func topic(conversationID string) string {
	h := sha256.Sum256([]byte("parley-push-topic:" + conversationID))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

func (s *webPushSender) attempt(d chat.Device, n Notification) attempt {
	payload, _ := json.Marshal(n)
	return func(ctx context.Context) (outcome, time.Duration, error) {
		if d.Keys == nil {
			return rejected, 0, errors.New("subscription has no keys")
		}
		if err := checkEndpoint(d.Endpoint); err != nil {
			return blocked, 0, err
		}
		sub := &webpush.Subscription{Endpoint: d.Endpoint, Keys: webpush.Keys{Auth: d.Keys.Auth, P256dh: d.Keys.P256DH}}
		res, err := webpush.SendNotificationWithContext(ctx, payload, sub, &webpush.Options{
			HTTPClient:      s.client,
			RecordSize:      webPushRecordSize,
			Subscriber:      strings.TrimPrefix(s.cfg.Subject, "mailto:"), // the library adds mailto: itself
			Topic:           topic(n.ConversationID),
			TTL:             webPushTTL,
			Urgency:         webpush.UrgencyHigh,
			VAPIDPublicKey:  s.cfg.VAPIDPublicKey,
			VAPIDPrivateKey: s.cfg.VAPIDPrivateKey,
		})
		if err != nil {
			if errors.Is(err, errBlocked) {
				return blocked, 0, err
			}
			if isNetErr(err) {
				return retry, 0, err
			}
			return rejected, 0, err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return classify(res, http.StatusNotFound, http.StatusGone)
	}
}

// isNetErr reports whether err came from the network or the request's
// context, rather than from building the push.
func isNetErr(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.DeadlineExceeded)
}

// nonPublic are ranges that are not reachable public unicast addresses
// beyond what netip's predicates name.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("100::/64"),        // discard
}

// PublicAddr reports whether a is a public unicast address that push
// deliveries may reach; loopback too when allowLoopback. IPv4-mapped IPv6
// addresses are judged as the IPv4 address they carry.
func PublicAddr(a netip.Addr, allowLoopback bool) bool {
	a = a.Unmap()
	if a.IsLoopback() {
		return allowLoopback
	}
	if !a.IsValid() || a.IsUnspecified() || a.IsPrivate() || a.IsLinkLocalUnicast() ||
		a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
