package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestDeletedTextLeavesTheStoreFiles: a deleted message's text is gone
// from every file of the store (WAL, sstables), not just hidden.
func TestDeletedTextLeavesTheStoreFiles(t *testing.T) {
	s := startServer(t)
	alice := s.signIn(t, "alice")
	cid := s.createGroup(t, alice, "forget")
	_, m := s.send(t, alice, cid, "xylophonequartz secret", "f1")
	s.do(t, "PATCH", "/v1/conversations/"+cid+"/messages/"+m["id"].(string), alice, map[string]string{"text": "xylophonequartz edited"})
	s.send(t, alice, cid, "zwitterion: an unrelated message that stays", "f2")
	if r := s.do(t, "DELETE", "/v1/conversations/"+cid+"/messages/"+m["id"].(string), alice, nil); r.status != 204 {
		t.Fatalf("delete: %d", r.status)
	}
	s.stop()
	found := false
	_ = filepath.Walk(filepath.Join(s.dataDir, "store"), func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte("xylophonequartz")) {
			t.Errorf("deleted text still in %s", filepath.Base(p))
		}
		if bytes.Contains(b, []byte("zwitterion")) {
			found = true
		}
		return nil
	})
	if !found {
		t.Error("the check reads nothing: the kept message is in no file either")
	}
	s.start()
	hist := s.do(t, "GET", "/v1/conversations/"+cid+"/messages", alice, nil).json(t)["messages"].([]any)
	if len(hist) != 2 || hist[1].(map[string]any)["text"] != "zwitterion: an unrelated message that stays" {
		t.Fatalf("history after the purge: %v", hist)
	}
}
