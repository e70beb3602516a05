package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// putUpload PUTs body to an upload URL the server answered, with the
// headers it named.
func (s *server) putUpload(t *testing.T, slot map[string]any, body []byte) int {
	t.Helper()
	u := slot["upload_url"].(string)
	if strings.HasPrefix(u, "/") {
		u = s.url + u
	}
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(body))
	for k, v := range slot["headers"].(map[string]any) {
		if http.CanonicalHeaderKey(k) != "Content-Length" {
			req.Header.Set(k, v.(string))
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// download follows GET /v1/attachments/{id} to the bytes.
func (s *server) download(t *testing.T, token, id string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/v1/attachments/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req) // follows the 302
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("download of %s: %d", id, res.StatusCode)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The defect of issue 13: replaying an upload URL after its attachment was
// posted replaced the bytes members download (same size and type, no
// event). An upload URL writes once.
func TestUploadURLReplayAfterPostIsRefused(t *testing.T) {
	s := startServer(t)
	alice, bob := s.signIn(t, "alice"), s.signIn(t, "bob")
	cid := s.createGroup(t, alice, "replay", "bob")
	st, _ := s.connect(t, transportWS, bob, "")

	good := []byte("the minutes as agreed")
	evil := []byte("the minutes as forged")
	r := s.do(t, "POST", "/v1/attachments", alice, map[string]any{"name": "minutes.txt", "content_type": "text/plain", "size": len(good)})
	if r.status != 201 {
		t.Fatalf("create attachment: %d %s", r.status, r.body)
	}
	slot := r.json(t)
	id := slot["id"].(string)
	if status := s.putUpload(t, slot, good); status != 200 {
		t.Fatalf("upload: %d", status)
	}
	if status := s.putUpload(t, slot, evil); status != http.StatusConflict {
		t.Errorf("replay before posting: %d, want 409", status)
	}
	if p := s.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]any{"text": "minutes", "attachments": []string{id}}); p.status != 201 {
		t.Fatalf("post: %d %s", p.status, p.body)
	}
	collect(t, st, 1, "message.created")
	if status := s.putUpload(t, slot, evil); status != http.StatusConflict {
		t.Errorf("replay after posting: %d, want 409", status)
	}
	if got := s.download(t, bob, id); !bytes.Equal(got, good) {
		t.Fatalf("bob downloads %q, want %q", got, good)
	}
}
