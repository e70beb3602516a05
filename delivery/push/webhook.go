package push

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/parleychat/parley/chat"
)

// webhookSender posts webhook devices' pushes to the operator's push
// gateway, signed the Standard Webhooks way.
type webhookSender struct {
	url    string
	key    []byte
	client *http.Client
}

func newWebhookSender(cfg Config) (*webhookSender, error) {
	key, err := webhookKey(cfg.WebhookSecret)
	if err != nil {
		return nil, err
	}
	// The gateway is the operator's own, often on a private network: it
	// is not held to the public-address rule of users' endpoints.
	return &webhookSender{url: cfg.WebhookURL, key: key, client: &http.Client{
		Timeout:       sendTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}, nil
}

// webhookBody is what the push gateway gets (API "Devices and push").
type webhookBody struct {
	Device struct {
		ID       string `json:"id"`
		Platform string `json:"platform"`
		Token    string `json:"token"`
	} `json:"device"`
	UserID       string       `json:"user_id"`
	Notification Notification `json:"notification"`
}

// Sign returns the Standard Webhooks signature of a webhook: "v1," and the
// base64 of HMAC-SHA256 over "id.timestamp.body" with key.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// attempt builds one webhook; every try has the same webhook-id, so the
// gateway can drop a retry of what it already took, and a fresh timestamp
// and signature.
func (s *webhookSender) attempt(d chat.Device, user string, n Notification) attempt {
	var b webhookBody
	b.Device.ID, b.Device.Platform, b.Device.Token = d.ID, d.Platform, d.Token
	b.UserID, b.Notification = user, n
	body, _ := json.Marshal(b)
	id := chat.NewID("msg")
	return func(ctx context.Context) (outcome, time.Duration, error) {
		ts := time.Now().Unix()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return rejected, 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
		req.Header.Set("webhook-signature", Sign(s.key, id, ts, body))
		res, err := s.client.Do(req)
		if err != nil {
			return retry, 0, err
		}
		defer res.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		// 410: the gateway says the platform token is dead (FCM's
		// UNREGISTERED, APNs' 410). A 404 is more likely a wrong URL
		// than a dead device, so it removes nothing.
		return classify(res, http.StatusGone)
	}
}
