package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

// nextOfType reads until an object of type typ arrives.
func nextOfType(t *testing.T, st stream, typ string) map[string]any {
	t.Helper()
	for {
		m, err := st.next(15 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", typ, err)
		}
		if m["type"] == typ {
			return m
		}
	}
}

func TestEditAndDeleteReachEveryTransportLiveAndOnResume(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "edits", "bob")
	var streams []stream
	var cursors []string
	for _, tr := range transports {
		st, _ := s.connect(t, tr, bob, "")
		streams = append(streams, st)
	}
	_, m := s.send(t, alice, cid, "first draft", "d1")
	mid := m["id"].(string)
	for _, st := range streams {
		cursors = append(cursors, nextOfType(t, st, "message.created")["cursor"].(string))
	}
	path := "/v1/conversations/" + cid + "/messages/" + mid
	r := s.do(t, "PATCH", path, alice, map[string]string{"text": "final words"}, "If-Match", "1")
	if r.status != 200 || r.json(t)["version"].(float64) != 2 {
		t.Fatalf("edit: %d %s", r.status, r.body)
	}
	for i, st := range streams {
		if up := nextOfType(t, st, "message.updated"); textOf(up) != "final words" {
			t.Fatalf("%s: update carries %q", transports[i], textOf(up))
		}
	}
	if r := s.do(t, "DELETE", path, alice, nil); r.status != 204 {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	for i, st := range streams {
		if del := nextOfType(t, st, "message.deleted"); del["message_id"] != mid {
			t.Fatalf("%s: delete event %v", transports[i], del)
		}
		st.close()
	}
	// Resume from just after the create, on the next transport along: the
	// update is replayed with its text scrubbed (the message is deleted for
	// good), then the delete.
	for i, c := range cursors {
		st, _ := s.connect(t, transports[(i+1)%3], bob, c)
		if up := nextOfType(t, st, "message.updated"); textOf(up) != "" {
			t.Fatalf("resume: a deleted message's old text %q was replayed", textOf(up))
		}
		nextOfType(t, st, "message.deleted")
	}
	hist := s.do(t, "GET", "/v1/conversations/"+cid+"/messages", bob, nil).json(t)["messages"].([]any)
	tomb := hist[0].(map[string]any)
	if tomb["deleted"] != true || tomb["text"] != "" || len(tomb["attachments"].([]any)) != 0 {
		t.Fatalf("history shows %v, want a tombstone", tomb)
	}
}

func TestReactionsRepliesAndReadState(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "react", "bob")
	_, m := s.send(t, alice, cid, "question?", "q")
	mid := m["id"].(string)
	react := "/v1/conversations/" + cid + "/messages/" + mid + "/reactions/" + url.PathEscape("👍")
	for i := 0; i < 2; i++ { // idempotent
		if r := s.do(t, "PUT", react, bob, nil); r.status != 204 {
			t.Fatalf("react: %d %s", r.status, r.body)
		}
	}
	got := s.do(t, "GET", "/v1/conversations/"+cid+"/messages/"+mid, alice, nil).json(t)
	if fmt.Sprint(got["reactions"]) != "map[👍:[bob]]" {
		t.Fatalf("reactions %v", got["reactions"])
	}
	r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", bob, map[string]any{"text": "answer", "reply_to": mid})
	if r.status != 201 || r.json(t)["reply_to"] != mid {
		t.Fatalf("reply: %d %s", r.status, r.body)
	}
	conv := s.do(t, "GET", "/v1/conversations", alice, nil).json(t)["conversations"].([]any)[0].(map[string]any)
	if conv["unread"].(float64) != 1 {
		t.Fatalf("alice has %v unread, want 1 (bob's answer)", conv["unread"])
	}
	last := conv["last_seq"].(float64)
	if r := s.do(t, "POST", "/v1/conversations/"+cid+"/read", alice, map[string]any{"seq": last}); r.status != 204 {
		t.Fatalf("read: %d %s", r.status, r.body)
	}
	s.restart()
	conv = s.do(t, "GET", "/v1/conversations/"+cid, alice, nil).json(t)
	if conv["read_seq"].(float64) != last || conv["unread"].(float64) != 0 {
		t.Fatalf("after restart read_seq %v unread %v", conv["read_seq"], conv["unread"])
	}
}

func TestSearchFindsMembersMessagesOnly(t *testing.T) {
	s := startServer(t)
	alice, bob, eve := s.signIn(t, "alice"), s.signIn(t, "bob"), s.signIn(t, "eve")
	cid := s.createGroup(t, alice, "search", "bob")
	evesOwn := s.createGroup(t, eve, "eve's")
	s.send(t, eve, evesOwn, "pineapple in eve's room", "e1")
	_, m := s.send(t, alice, cid, "the pineapple plan", "p1")
	_, gone := s.send(t, alice, cid, "secret zucchini recipe", "z1")
	find := func(token, q string) []any {
		return s.do(t, "GET", "/v1/search?q="+url.QueryEscape(q), token, nil).json(t)["results"].([]any)
	}
	// findSoon waits until q finds want results (the API: within 2 s).
	findSoon := func(token, q string, want int) []any {
		var res []any
		testutil.Eventually(t, 2*time.Second, func() error {
			if res = find(token, q); len(res) != want {
				return fmt.Errorf("search %q: %d results, want %d", q, len(res), want)
			}
			return nil
		})
		return res
	}
	res := findSoon(bob, "pineapple", 1)
	if len(res) != 1 || res[0].(map[string]any)["message"].(map[string]any)["id"] != m["id"] {
		t.Fatalf("bob's search: %v", res)
	}
	if hl := fmt.Sprint(res[0].(map[string]any)["highlights"]); !strings.Contains(hl, "<mark>pineapple</mark>") {
		t.Fatalf("highlights %s", hl)
	}
	// Eve's message is searchable (she finds it), so a query that
	// widened bob's filter would now find it too.
	findSoon(eve, "pineapple", 1)
	for _, q := range []string{"pineapple conversation_id:" + evesOwn, "*", "eve's"} {
		for _, r := range find(bob, q) {
			if r.(map[string]any)["message"].(map[string]any)["conversation_id"] != cid {
				t.Fatalf("query %q leaked %v", q, r)
			}
		}
	}
	if res := s.do(t, "GET", "/v1/search?q=pineapple&conversation_id="+cid, eve, nil).json(t)["results"].([]any); len(res) != 0 {
		t.Fatalf("a non-member found %v", res)
	}
	s.do(t, "DELETE", "/v1/conversations/"+cid+"/messages/"+gone["id"].(string), alice, nil)
	// A message sent after the delete is indexed after it (one
	// conversation, one partition, in order): once it is found, the
	// delete has been indexed too.
	s.send(t, alice, cid, "a kiwi after the delete", "k1")
	findSoon(bob, "kiwi", 1)
	if res := find(bob, "zucchini"); len(res) != 0 {
		t.Fatalf("a deleted message is still found: %v", res)
	}
	// Edited messages are found by their new text only.
	s.do(t, "PATCH", "/v1/conversations/"+cid+"/messages/"+m["id"].(string), alice, map[string]string{"text": "the mango plan"})
	findSoon(bob, "mango", 1)
	if res := s.do(t, "GET", "/v1/search?q=pineapple&conversation_id="+cid, bob, nil).json(t)["results"].([]any); len(res) != 0 {
		t.Fatalf("old text still found: %v", res)
	}
}

// upload creates an attachment and PUTs body to its URL; it returns the id
// and the upload status.
func (s *server) upload(t *testing.T, token, name, ct string, declared int64, body []byte) (string, int) {
	t.Helper()
	r := s.do(t, "POST", "/v1/attachments", token, map[string]any{"name": name, "content_type": ct, "size": declared})
	if r.status != 201 {
		return "", r.status
	}
	a := r.json(t)
	u := a["upload_url"].(string)
	if strings.HasPrefix(u, "/") {
		u = s.url + u
	}
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(body))
	for k, v := range a["headers"].(map[string]any) {
		req.Header.Set(k, v.(string))
	}
	req.Header.Set("Content-Type", ct)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return a["id"].(string), res.StatusCode
}

func pngBytes(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := 0; x < w; x++ {
		img.Set(x, x%h, color.RGBA{200, 30, 30, 255})
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

func TestAttachmentsThumbnailsAndAccess(t *testing.T) {
	s := startServer(t)
	alice, bob, eve := s.signIn(t, "alice"), s.signIn(t, "bob"), s.signIn(t, "eve")
	cid := s.createGroup(t, alice, "files", "bob")
	st, _ := s.connect(t, transportSSE, bob, "")

	img := pngBytes(800, 600)
	id, status := s.upload(t, alice, "photo.png", "image/png", int64(len(img)), img)
	if status/100 != 2 {
		t.Fatalf("upload: %d", status)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(token, path string) *http.Response {
		req, _ := http.NewRequest("GET", s.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := get(bob, "/v1/attachments/"+id); res.StatusCode != 404 {
		t.Fatalf("bob sees an unposted attachment: %d", res.StatusCode)
	}
	if res := get(alice, "/v1/attachments/"+id); res.StatusCode != 302 {
		t.Fatalf("the uploader gets %d", res.StatusCode)
	}
	r := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "look", "attachments": []string{id}})
	if r.status != 201 {
		t.Fatalf("post with attachment: %d %s", r.status, r.body)
	}
	if again := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "again", "attachments": []string{id}}); again.status != 400 {
		t.Fatalf("an attachment posted twice: %d", again.status)
	}
	nextOfType(t, st, "message.created")
	up := nextOfType(t, st, "message.updated")
	att := up["message"].(map[string]any)["attachments"].([]any)[0].(map[string]any)
	if att["thumbnail"] != true {
		t.Fatalf("update does not announce the thumbnail: %v", att)
	}
	res := get(bob, "/v1/attachments/"+id+"/thumbnail")
	if res.StatusCode != 302 {
		t.Fatalf("thumbnail: %d", res.StatusCode)
	}
	thumb, err := http.Get(res.Header.Get("Location"))
	if strings.HasPrefix(res.Header.Get("Location"), "/") {
		thumb, err = http.Get(s.url + res.Header.Get("Location"))
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := image.DecodeConfig(thumb.Body)
	thumb.Body.Close()
	if err != nil || cfg.Width > 320 || cfg.Height > 320 {
		t.Fatalf("thumbnail %dx%d %v", cfg.Width, cfg.Height, err)
	}
	if thumb.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Fatal("download without nosniff")
	}
	if res := get(eve, "/v1/attachments/"+id); res.StatusCode != 404 {
		t.Fatalf("a non-member gets %d", res.StatusCode)
	}

	// Limits and forgeries.
	if _, status := s.upload(t, alice, "big.bin", "application/octet-stream", 30<<20, nil); status != 413 {
		t.Fatalf("30 MiB declared: %d, want 413", status)
	}
	if _, status := s.upload(t, alice, "x.png", "image/png", 10, []byte("0123456789abcdef")); status/100 == 2 {
		t.Fatal("an upload longer than declared was accepted")
	}
	r = s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "f", "content_type": "application/x-evil", "size": 3})
	checkError(t, r, 400, "invalid_request")
	r = s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "f.txt", "content_type": "text/plain", "size": 3})
	u := r.json(t)["upload_url"].(string)
	forged := strings.Replace(u, "sig=", "sig=0", 1)
	req, _ := http.NewRequest("PUT", s.url+strings.TrimPrefix(forged, s.url), strings.NewReader("abc"))
	req.Header.Set("Content-Type", "text/plain")
	fres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	fres.Body.Close()
	if fres.StatusCode != 403 {
		t.Fatalf("forged upload URL: %d", fres.StatusCode)
	}
}

func TestDecompressionBombGetsNoThumbnail(t *testing.T) {
	s := startServer(t)
	alice := s.signIn(t, "alice")
	cid := s.createGroup(t, alice, "bomb")
	// A PNG whose header claims 20000x20000 pixels (400 MP): refused before decoding.
	bomb := pngBytes(20000, 20000)
	id, status := s.upload(t, alice, "bomb.png", "image/png", int64(len(bomb)), bomb)
	if status/100 != 2 {
		t.Fatalf("upload %d", status)
	}
	s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "boom", "attachments": []string{id}})
	small := pngBytes(50, 50)
	id2, _ := s.upload(t, alice, "ok.png", "image/png", int64(len(small)), small)
	s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "fine", "attachments": []string{id2}})
	// The small image's thumbnail is made after the bomb was looked at
	// (one conversation, in order): once it exists, the bomb got none.
	testutil.Eventually(t, 10*time.Second, func() error {
		if st := s.do(t, "GET", "/v1/attachments/"+id2+"/thumbnail", alice, nil, "Accept", "").status; st == 404 {
			return errors.New("the media role stalled after a bomb")
		}
		return nil
	})
	if r := s.do(t, "GET", "/v1/attachments/"+id+"/thumbnail", alice, nil, "Accept", ""); r.status != 404 {
		t.Fatalf("bomb thumbnail: %d", r.status)
	}
}

// TestPresenceOnlineOfflineWithGrace: a user stays online for the grace
// after its last connection closes, then goes offline. The grace is
// shortened (--presence.grace) so that the test does not wait the API's
// 10 s; TestPresenceGraceDefaultsToTheAPIs10s pins the default.
func TestPresenceOnlineOfflineWithGrace(t *testing.T) {
	const grace = 1500 * time.Millisecond
	s := startServer(t, "--presence.grace", grace.String())
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "presence", "bob")
	watch, _ := s.connect(t, transportSSE, alice, "")
	online := func() string {
		return fmt.Sprint(s.do(t, "GET", "/v1/conversations/"+cid+"/presence", alice, nil).json(t)["online"])
	}
	bs, _ := s.connect(t, transportWS, bob, "")
	for {
		m := nextOfType(t, watch, "presence")
		if m["user_id"] == "bob" && m["online"] == true {
			break
		}
	}
	if got := online(); got != "[alice bob]" {
		t.Fatalf("online %s", got)
	}
	closed := time.Now()
	bs.close()
	// bob's going offline is announced on alice's stream; what proves he
	// stayed online meanwhile is the time it comes at, never before the
	// grace has passed since the close.
	for {
		m := nextOfType(t, watch, "presence")
		if m["user_id"] == "bob" && m["online"] == false {
			break
		}
	}
	if d := time.Since(closed); d < grace {
		t.Fatalf("offline %v after the close, before the %v grace", d, grace)
	}
	if got := online(); got != "[alice]" {
		t.Fatalf("online %s after bob's offline event", got)
	}
}

// TestPresenceGraceDefaultsToTheAPIs10s: without --presence.grace a user
// stays online 10 s after its last connection (API.md).
func TestPresenceGraceDefaultsToTheAPIs10s(t *testing.T) {
	var cfg config
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	cfg.registerFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.Gateway.Presence.Grace != 10*time.Second {
		t.Fatalf("default grace %v, want 10s", cfg.Gateway.Presence.Grace)
	}
}

func TestSearchFiltersAndPaging(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	c1 := s.createGroup(t, alice, "one", "bob")
	c2 := s.createGroup(t, alice, "two", "bob")
	s.send(t, alice, c1, "kiwi from alice in one", "a1")
	_, mid := s.send(t, bob, c1, "kiwi from bob in one", "b1")
	s.send(t, alice, c2, "kiwi from alice in two", "a2")
	img := pngBytes(10, 10)
	id, _ := s.upload(t, alice, "k.png", "image/png", int64(len(img)), img)
	s.do(t, "POST", "/v1/conversations/"+c2+"/messages", alice, map[string]any{"text": "kiwi picture", "attachments": []string{id}})
	search := func(query string) map[string]any {
		t.Helper()
		r := s.do(t, "GET", "/v1/search?q=kiwi"+query, bob, nil)
		if r.status != 200 {
			t.Fatalf("search %s: %d %s", query, r.status, r.body)
		}
		return r.json(t)
	}
	testutil.Eventually(t, 2*time.Second, func() error {
		if n := len(search("")["results"].([]any)); n < 4 {
			return fmt.Errorf("%d of 4 searchable", n)
		}
		return nil
	})
	count := func(query string) int { return len(search(query)["results"].([]any)) }
	if n := count("&conversation_id=" + c1); n != 2 {
		t.Fatalf("conversation filter: %d", n)
	}
	if n := count("&sender_id=bob"); n != 1 {
		t.Fatalf("sender filter: %d", n)
	}
	if n := count("&has=attachment"); n != 1 {
		t.Fatalf("attachment filter: %d", n)
	}
	created := mid["created_at"].(string)
	if n := count("&after=" + url.QueryEscape(created)); n != 2 {
		t.Fatalf("after filter: %d", n)
	}
	if n := count("&before=" + url.QueryEscape(created)); n != 1 {
		t.Fatalf("before filter: %d", n)
	}
	seen := map[any]bool{}
	page := search("&limit=3")
	for {
		for _, r := range page["results"].([]any) {
			id := r.(map[string]any)["message"].(map[string]any)["id"]
			if seen[id] {
				t.Fatalf("%v on two pages", id)
			}
			seen[id] = true
		}
		next, _ := page["next_page_token"].(string)
		if next == "" {
			break
		}
		page = search("&limit=3&page_token=" + url.QueryEscape(next))
	}
	if len(seen) != 4 {
		t.Fatalf("paging saw %d of 4", len(seen))
	}
	for _, bad := range []string{"&limit=51", "&after=yesterday", "&has=link", "&page_token=%21%21"} {
		checkError(t, s.do(t, "GET", "/v1/search?q=kiwi"+bad, bob, nil), 400, "invalid_request")
	}
}

// TestRemovedMemberCannotSendRightAfter: the gateway remembers who may
// send where, so a member's sends skip the store; a removal (or leaving)
// must end that at once, over REST and WebSocket alike.
func TestRemovedMemberCannotSendRightAfter(t *testing.T) {
	s := startServer(t)
	alice, bob, carol := s.signIn(t, "alice"), s.signIn(t, "bob"), s.signIn(t, "carol")
	cid := s.createGroup(t, alice, "kick", "bob", "carol")
	msgs := "/v1/conversations/" + cid + "/messages"
	s.send(t, bob, cid, "bob is here", "b1")
	s.send(t, carol, cid, "carol is here", "c1")
	bobWS, _ := s.connect(t, transportWS, bob, "")
	if err := bobWS.(*wsStream).write(map[string]any{"type": "send", "ref": "w1", "conversation_id": cid, "client_id": "bw1", "text": "over ws"}); err != nil {
		t.Fatal(err)
	}
	if ack := nextOfType(t, bobWS, "ack"); ack["ref"] != "w1" {
		t.Fatalf("ack: %v", ack)
	}

	if r := s.do(t, "DELETE", "/v1/conversations/"+cid+"/members/bob", alice, nil); r.status != 204 {
		t.Fatalf("remove bob: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", msgs, bob, map[string]string{"text": "still here?", "client_id": "b2"}); r.status != 404 {
		t.Fatalf("send after removal: %d %s, want 404", r.status, r.body)
	}
	if err := bobWS.(*wsStream).write(map[string]any{"type": "send", "ref": "w2", "conversation_id": cid, "client_id": "bw2", "text": "over ws"}); err != nil {
		t.Fatal(err)
	}
	if e := nextOfType(t, bobWS, "error"); e["ref"] != "w2" || e["error"].(map[string]any)["code"] != "not_found" {
		t.Fatalf("ws send after removal: %v", e)
	}

	if r := s.do(t, "DELETE", "/v1/conversations/"+cid+"/members/carol", carol, nil); r.status != 204 {
		t.Fatalf("carol leaves: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", msgs, carol, map[string]string{"text": "one more", "client_id": "c2"}); r.status != 404 {
		t.Fatalf("send after leaving: %d %s, want 404", r.status, r.body)
	}
	// Added back, bob may send again.
	if r := s.do(t, "PUT", "/v1/conversations/"+cid+"/members/bob", alice, nil); r.status != 201 {
		t.Fatalf("add bob back: %d %s", r.status, r.body)
	}
	s.send(t, bob, cid, "back", "b3")
}
