package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/cmd/parley-check/check"
)

// recorder is a history shared by a run's clients.
type recorder struct {
	mu sync.Mutex
	h  check.History
}

func (r *recorder) add(recs ...check.Record) {
	r.mu.Lock()
	r.h = append(r.h, recs...)
	r.mu.Unlock()
}

// lastSeq is a conversation's last_seq as a member reads it.
func (s *server) lastSeq(t *testing.T, token, cid string) int64 {
	t.Helper()
	r := s.do(t, "GET", "/v1/conversations/"+cid, token, nil)
	if r.status != 200 {
		t.Fatalf("GET conversation %s: %d %s", cid, r.status, r.body)
	}
	return int64(r.json(t)["last_seq"].(float64))
}

// An embedded server, three receivers (WebSocket, SSE, and long-poll that
// switches to WebSocket halfway with its cursor), three senders sending
// concurrently over REST (each retrying one client_id), a delete: the
// history checker finds every count at 0, with the store's log and search
// read back. This is the checker's proof on a healthy server; the fault
// runs of issue 13 hold their histories to the same bar.
func TestHistoryOfAHealthyRunChecksValid(t *testing.T) {
	s := startServer(t)
	const marker = "chkmarker"
	tok := map[string]string{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		tok[u] = s.signIn(t, u)
	}
	convs := map[string][]string{ // conversation -> members besides its creator alice
		s.createGroup(t, tok["alice"], "all", "bob", "carol", "dave"): {"alice", "bob", "carol", "dave"},
		s.createGroup(t, tok["alice"], "pair", "dave"):                {"alice", "dave"},
	}
	third := s.createGroup(t, tok["bob"], "trio", "carol", "dave")
	convs[third] = []string{"bob", "carol", "dave"}

	rec := &recorder{}
	type receiver struct {
		name, user, transport string
		watch                 map[string]int64
		st                    stream
	}
	var receivers []*receiver
	for _, rv := range []struct{ user, transport string }{{"bob", transportWS}, {"carol", transportSSE}, {"dave", transportPoll}} {
		st, _ := s.connect(t, rv.transport, tok[rv.user], "")
		r := &receiver{name: rv.user + "/" + rv.transport, user: rv.user, transport: rv.transport, watch: map[string]int64{}, st: st}
		for cid, members := range convs {
			for _, m := range members {
				if m == rv.user {
					r.watch[cid] = s.lastSeq(t, tok[rv.user], cid)
					rec.add(check.Record{Kind: check.KindWatch, Receiver: r.name, ConversationID: cid, AfterSeq: r.watch[cid]})
				}
			}
		}
		receivers = append(receivers, r)
	}

	// Senders: 20 messages each, to the conversations they are in, one
	// client_id sent twice.
	var wg sync.WaitGroup
	for _, sender := range []string{"alice", "bob", "carol"} {
		var mine []string
		for cid, members := range convs {
			for _, m := range members {
				if m == sender {
					mine = append(mine, cid)
				}
			}
		}
		wg.Go(func() {
			for i := range 20 {
				cid := mine[i%len(mine)]
				clientID := fmt.Sprintf("%s-%d", sender, i)
				tries := 1
				if i == 7 {
					tries = 2 // a retry with the same client_id: 200, one message
				}
				for range tries {
					rec.add(check.Record{Kind: check.KindOp, Time: time.Now(), Process: sender, Phase: check.Invoke, F: "send", ConversationID: cid, SenderID: sender, ClientID: clientID})
					out, status := s.trySend(cid, tok[sender], fmt.Sprintf("%s says %d %s", sender, i, marker), clientID)
					r := check.Record{Kind: check.KindOp, Time: time.Now(), Process: sender, F: "send", ConversationID: cid, SenderID: sender, ClientID: clientID, Note: strconv.Itoa(status)}
					switch {
					case status == 200 || status == 201:
						r.Phase, r.MessageID, r.Seq = check.OK, out.ID, out.Seq
					case status >= 400 && status < 500:
						r.Phase = check.Fail
					default:
						r.Phase = check.Unknown
					}
					rec.add(r)
				}
			}
		})
	}

	// Receivers read until they have every watched conversation's last
	// seq; dave switches from long-poll to WebSocket with his cursor.
	done := make(chan struct{})
	var rwg sync.WaitGroup
	targets := sync.Map{} // cid -> last seq, known once the senders are done
	for _, r := range receivers {
		rwg.Go(func() {
			last := map[string]int64{}
			for cid, after := range r.watch {
				last[cid] = after
			}
			var cursor string
			got := 0
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				m, err := r.st.next(500 * time.Millisecond)
				if err == nil {
					if ev, ok := check.EventRecord(r.name, r.transport, m); ok {
						rec.add(ev)
						last[ev.ConversationID] = max(last[ev.ConversationID], ev.Seq)
						cursor, _ = m["cursor"].(string)
						got++
						if got == 15 && r.transport == transportPoll {
							r.st.close()
							ws, err := dialWS(s.url, tok[r.user], cursor)
							if err != nil {
								t.Errorf("%s: resume on WebSocket: %v", r.name, err)
								return
							}
							r.st, r.transport = ws, transportWS
							if ready, err := ws.next(10 * time.Second); err != nil || ready["type"] != "ready" {
								t.Errorf("%s: resumed without ready: %v %v", r.name, ready, err)
								return
							}
						}
					}
					continue
				}
				select {
				case <-done:
				default:
					continue
				}
				caughtUp := true
				for cid := range r.watch {
					want, _ := targets.Load(cid)
					caughtUp = caughtUp && last[cid] >= want.(int64)
				}
				if caughtUp {
					return
				}
			}
			t.Errorf("%s did not catch up in 60 s: %v", r.name, last)
		})
	}
	wg.Wait()

	// A delete, so the index must drop what the store tombstoned.
	var victim string
	rec.mu.Lock()
	for _, r := range rec.h {
		if r.Kind == check.KindOp && r.Phase == check.OK && r.SenderID == "alice" {
			victim = r.ConversationID + "/messages/" + r.MessageID
			break
		}
	}
	rec.mu.Unlock()
	if d := s.do(t, "DELETE", "/v1/conversations/"+victim, tok["alice"], nil); d.status != 204 {
		t.Fatalf("delete %s: %d %s", victim, d.status, d.body)
	}
	for cid := range convs {
		targets.Store(cid, s.lastSeq(t, tok["dave"], cid))
	}
	close(done)
	rwg.Wait()
	for _, r := range receivers {
		r.st.close()
	}

	read, err := check.Source{URL: s.url, Token: tok["dave"], Query: marker, IndexWait: 20 * time.Second}.Collect(t.Context(), check.Conversations(rec.h))
	if err != nil {
		t.Fatal(err)
	}
	perTransport := map[string]int{}
	for _, r := range rec.h {
		if r.Kind == check.KindEvent {
			perTransport[r.Receiver+" on "+r.Transport]++
		}
	}
	if perTransport["dave/longpoll on longpoll"] == 0 || perTransport["dave/longpoll on websocket"] == 0 {
		t.Fatalf("dave did not receive on both transports: %v", perTransport)
	}
	h := append(rec.h, read...)
	rep := check.Check(h)
	var b bytes.Buffer
	_ = rep.WriteText(&b)
	t.Logf("history checker:\n%s", b.String())
	if !rep.OK() {
		t.Fatal("the history of a healthy run has anomalies")
	}
	if rep.Acked != 63 || rep.Receivers != 3 || rep.Events < 100 || rep.Indexed != 59 {
		t.Fatalf("checked too little: %d acked (want 63), %d receivers (3), %d events (≥ 100), %d indexed (59)", rep.Acked, rep.Receivers, rep.Events, rep.Indexed)
	}
}

// sent is what a send answers.
type sent struct {
	ID  string
	Seq int64
}

// trySend sends over REST and returns the message and the status; a
// transport failure is status 0.
func (s *server) trySend(cid, token, text, clientID string) (sent, int) {
	r, err := http.NewRequest("POST", s.url+"/v1/conversations/"+cid+"/messages",
		bytes.NewReader(fmt.Appendf(nil, `{"text":%q,"client_id":%q}`, text, clientID)))
	if err != nil {
		return sent{}, 0
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		return sent{}, 0
	}
	defer res.Body.Close()
	var m struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		return sent{}, res.StatusCode
	}
	return sent{ID: m.ID, Seq: m.Seq}, res.StatusCode
}
