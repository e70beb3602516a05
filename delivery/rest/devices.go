package rest

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
	"github.com/parleychat/parley/delivery/push"
)

// PushConfig holds what the gateway needs of push: the VAPID key pair
// that Web Push subscriptions are made for, and whether device endpoints
// may be on loopback (tests only).
type PushConfig struct {
	// VAPIDPublicKey is the uncompressed P-256 public key, base64url
	// without padding (what browsers take as applicationServerKey).
	VAPIDPublicKey string
	// VAPIDPrivateKey is the matching 32-byte private scalar, base64url.
	VAPIDPrivateKey string
	// AllowLoopback admits Web Push endpoints on loopback addresses, so
	// tests can run a push service in the process; never in production.
	AllowLoopback bool
}

// RegisterFlags registers the push flags on fs.
func (c *PushConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.VAPIDPublicKey, "push.vapid-public-key", "", "VAPID public key (uncompressed P-256, base64url) for Web Push; with --push.vapid-private-key it turns Web Push on")
	fs.StringVar(&c.VAPIDPrivateKey, "push.vapid-private-key", "", "VAPID private key (32 bytes, base64url) matching --push.vapid-public-key")
	fs.BoolVar(&c.AllowLoopback, "push.allow-loopback", false, "accept Web Push endpoints on loopback addresses (tests only)")
}

// Validate checks that the VAPID keys come as a matching pair, or not at all.
func (c *PushConfig) Validate() error {
	if (c.VAPIDPublicKey == "") != (c.VAPIDPrivateKey == "") {
		return errors.New("push.vapid-public-key and push.vapid-private-key go together")
	}
	if c.VAPIDPublicKey == "" {
		return nil
	}
	priv, err := decodeB64URL(c.VAPIDPrivateKey)
	if err != nil || len(priv) != 32 {
		return errors.New("push.vapid-private-key must be 32 bytes in base64url")
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return fmt.Errorf("push.vapid-private-key: %w", err)
	}
	pub, err := decodeB64URL(c.VAPIDPublicKey)
	if err != nil || string(key.PublicKey().Bytes()) != string(pub) {
		return errors.New("push.vapid-public-key is not the public key of push.vapid-private-key")
	}
	return nil
}

// decodeB64URL decodes base64url with or without padding (browsers give
// subscription keys without it; some libraries add it).
func decodeB64URL(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// deviceBody is the wire shape of PUT /v1/devices/{id}.
type deviceBody struct {
	Kind     string `json:"kind"`
	Endpoint string `json:"endpoint"`
	Keys     *struct {
		P256DH string `json:"p256dh"`
		Auth   string `json:"auth"`
	} `json:"keys"`
	Platform string `json:"platform"`
	Token    string `json:"token"`
}

// maxPushTokenLen bounds a webhook device's token (FCM tokens are ~160
// characters, APNs tokens 64 hex digits).
const maxPushTokenLen = 4096

// maxEndpointLen bounds a Web Push endpoint URL.
const maxEndpointLen = 2048

// endpointResolveTimeout bounds the DNS lookup that checks an endpoint's
// host is public.
const endpointResolveTimeout = 3 * time.Second

func (a *API) putDevice(w http.ResponseWriter, r *http.Request) {
	u := httpx.User(r)
	id := r.PathValue("id")
	if !chat.ValidDeviceID(id) {
		a.writeCode(w, r, chat.CodeInvalid, "device id must be 1-64 characters of A-Z a-z 0-9 . _ -")
		return
	}
	var req deviceBody
	if err := a.decodeJSON(w, r, &req); err != nil {
		a.writeErr(w, r, err)
		return
	}
	now := time.Now().UTC()
	d := chat.Device{ID: id, UserID: u.ID, Kind: req.Kind, CreatedAt: now, UpdatedAt: now}
	switch req.Kind {
	case chat.DeviceWebPush:
		if err := a.checkEndpoint(r.Context(), req.Endpoint); err != nil {
			a.writeErr(w, r, err)
			return
		}
		if req.Keys == nil {
			a.writeCode(w, r, chat.CodeInvalid, "keys (p256dh, auth) are required for webpush")
			return
		}
		if p, err := decodeB64URL(req.Keys.P256DH); err != nil || len(p) != 65 {
			a.writeCode(w, r, chat.CodeInvalid, "keys.p256dh must be a 65-byte uncompressed P-256 key in base64url")
			return
		} else if _, err := ecdh.P256().NewPublicKey(p); err != nil {
			a.writeCode(w, r, chat.CodeInvalid, "keys.p256dh is not a point on P-256")
			return
		}
		if k, err := decodeB64URL(req.Keys.Auth); err != nil || len(k) != 16 {
			a.writeCode(w, r, chat.CodeInvalid, "keys.auth must be 16 bytes in base64url")
			return
		}
		d.Endpoint = req.Endpoint
		d.Keys = &chat.WebPushKeys{P256DH: req.Keys.P256DH, Auth: req.Keys.Auth}
	case chat.DeviceWebhook:
		switch req.Platform {
		case chat.PlatformFCM, chat.PlatformAPNs, chat.PlatformOther:
		default:
			a.writeCode(w, r, chat.CodeInvalid, `platform must be "fcm", "apns" or "other"`)
			return
		}
		if req.Token == "" || len(req.Token) > maxPushTokenLen || !printableASCII(req.Token) {
			a.writeCode(w, r, chat.CodeInvalid, fmt.Sprintf("token must be 1-%d printable ASCII characters", maxPushTokenLen))
			return
		}
		d.Platform, d.Token = req.Platform, req.Token
	default:
		a.writeCode(w, r, chat.CodeInvalid, `kind must be "webpush" or "webhook"`)
		return
	}
	created, err := a.store.PutDevice(r.Context(), d)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	} else {
		// The store kept the first registration's time; answer it.
		if ds, err := a.store.Devices(r.Context(), u.ID); err == nil {
			for _, x := range ds {
				if x.ID == id {
					d.CreatedAt = x.CreatedAt
				}
			}
		}
	}
	httpx.WriteJSON(w, status, d.Public())
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) {
	ds, err := a.store.Devices(r.Context(), httpx.User(r).ID)
	if err != nil {
		a.writeErr(w, r, unavailable(err))
		return
	}
	out := make([]chat.Device, len(ds))
	for i, d := range ds {
		out[i] = d.Public()
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"devices": out})
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !chat.ValidDeviceID(id) {
		a.writeCode(w, r, chat.CodeInvalid, "device id must be 1-64 characters of A-Z a-z 0-9 . _ -")
		return
	}
	if err := a.store.DeleteDevice(r.Context(), httpx.User(r).ID, id); err != nil {
		if chat.IsNotFound(err) {
			a.writeCode(w, r, chat.CodeNotFound, "device not found")
			return
		}
		a.writeErr(w, r, unavailable(err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) vapidPublicKey(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Push.VAPIDPublicKey == "" {
		a.writeCode(w, r, chat.CodeNotFound, "web push is not configured on this server")
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"key": a.cfg.Push.VAPIDPublicKey})
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkEndpoint refuses Web Push endpoints the server must not call: not
// https, with credentials, or on an address that is not public (loopback,
// private, link-local, CGNAT, unspecified, multicast …), whether written
// as an IP or as a name that resolves to one. The push role checks the
// address again when it connects, since a name may resolve differently
// later (DNS rebinding); this check gives the client its 400 early.
func (a *API) checkEndpoint(ctx context.Context, raw string) error {
	bad := func(why string) error { return chat.Errorf(chat.CodeInvalid, "endpoint %s", why) }
	if raw == "" || len(raw) > maxEndpointLen {
		return bad(fmt.Sprintf("must be an https URL of at most %d bytes", maxEndpointLen))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return bad("must be an https URL")
	}
	if u.User != nil {
		return bad("must not carry credentials")
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		rctx, cancel := context.WithTimeout(ctx, endpointResolveTimeout)
		defer cancel()
		ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		if err != nil || len(ips) == 0 {
			return bad("host does not resolve")
		}
		addrs = ips
	}
	for _, ip := range addrs {
		if !push.PublicAddr(ip, a.cfg.Push.AllowLoopback) {
			return bad("must be on a public address")
		}
	}
	return nil
}
