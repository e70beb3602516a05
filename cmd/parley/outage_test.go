//go:build outage

package main

// Engine outages under load. These tests stop and restart the shared real
// engines, so they must not run beside tests that use them: they are built
// only with -tags outage, and `make test` runs them on their own after the
// other Go tests (make test-outage).

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

// services runs deploy/local/services.
func services(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("../../deploy/local/services", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("deploy/local/services %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// readyz returns a gateway's readiness status and body.
func readyz(base string) (int, string) {
	res, err := http.Get(base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := res.Body.Read(buf)
	b.Write(buf[:n])
	return res.StatusCode, b.String()
}

// sendStats watches every send of an outage run: an answer must come
// within 5 s, and an error answer must be a 503 with Retry-After.
type sendStats struct {
	mu       sync.Mutex
	ok, s503 int
	slowest  time.Duration
	bad      []string
}

func (s *sendStats) record(status int, retryAfter string, took time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowest = max(s.slowest, took)
	switch {
	case err != nil:
		s.bad = append(s.bad, fmt.Sprintf("transport error after %v: %v", took, err))
	case took > 5500*time.Millisecond:
		s.bad = append(s.bad, fmt.Sprintf("an answer (%d) took %v", status, took))
	case status == 200 || status == 201:
		s.ok++
	case status == 503 && retryAfter != "":
		s.s503++
	default:
		s.bad = append(s.bad, fmt.Sprintf("status %d (Retry-After %q)", status, retryAfter))
	}
}

// outageLoad sends one message at a time per sender, with texts that are
// single searchable words, retrying a refused send with the same
// client_id, until stop; it returns the acknowledged ids per conversation
// and their texts.
func outageLoad(t *testing.T, bases, tokens, convs []string, senders int, stop <-chan struct{}, st *sendStats) (map[string]map[string]bool, map[string]string) {
	var mu sync.Mutex
	acked := map[string]map[string]bool{}
	texts := map[string]string{}
	for _, c := range convs {
		acked[c] = map[string]bool{}
	}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cid := convs[(s+i)%len(convs)]
				word := fmt.Sprintf("w%dx%d", s, i)
				for attempt := 0; ; attempt++ {
					// The same user retries (a client_id is per sender),
					// through either gateway.
					k := (s + i + attempt) % len(bases)
					start := time.Now()
					status, m, hdr, err := trySendH(bases[k], tokens[s%len(tokens)], cid, outageWord+" "+word, word)
					st.record(status, hdr.Get("Retry-After"), time.Since(start), err)
					if err == nil && (status == 201 || status == 200) {
						mu.Lock()
						acked[cid][m["id"].(string)] = true
						texts[m["id"].(string)] = word
						mu.Unlock()
						break
					}
					select {
					case <-stop:
						if attempt > 100 { // 30 s after the end: give up
							t.Errorf("send %s never acknowledged", word)
							return
						}
					default:
					}
					if attempt > 400 {
						t.Errorf("send %s never acknowledged", word)
						return
					}
					time.Sleep(300 * time.Millisecond) // the client's retry backoff, part of the load
				}
				time.Sleep(20 * time.Millisecond) // pacing: the load offers a send every 20 ms per sender

			}
		}()
	}
	wg.Wait()
	return acked, texts
}

// outageWord is in the text of every message the outage load sends.
const outageWord = "outageload"

// searchAll returns the ids of every message of token's search for q,
// following the page tokens to the end.
func searchAll(t *testing.T, api *server, token, q string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for page := ""; ; {
		path := "/v1/search?limit=50&q=" + url.QueryEscape(q)
		if page != "" {
			path += "&page_token=" + url.QueryEscape(page)
		}
		r := api.do(t, "GET", path, token, nil)
		if r.status != 200 {
			return ids // a pass that failed: the next one starts over
		}
		body := r.json(t)
		for _, res := range body["results"].([]any) {
			ids[res.(map[string]any)["message"].(map[string]any)["id"].(string)] = true
		}
		next, _ := body["next_page_token"].(string)
		if next == "" {
			return ids
		}
		page = next
	}
}

func TestOutageOfEachEngineUnderLoad(t *testing.T) {
	for _, eng := range []struct{ service, check string }{
		{"kafka", "log"},
		{"cassandra", "store"},
		{"elasticsearch", "index"},
	} {
		t.Run(eng.service, func(t *testing.T) {
			c := newCluster(t, 8)
			c.start("sequencer", "sequencer")
			c.start("worker", "indexer,media")
			a := c.start("gateway-a", "gateway")
			b := c.start("gateway-b", "gateway")
			apiA, apiB := a.api(t), b.api(t)
			alice, bob := apiA.signIn(t, "alice"), apiB.signIn(t, "bob")
			carol := apiB.signIn(t, "carol")
			convs := spreadConversations(t, apiA, alice, 4, "bob", "carol")
			carolWS, _ := apiB.connect(t, transportWS, carol, "")
			carolR := readAll(carolWS)

			var st sendStats
			stop := make(chan struct{})
			done := make(chan struct{})
			var acked map[string]map[string]bool
			var texts map[string]string
			go func() {
				acked, texts = outageLoad(t, []string{a.url, b.url}, []string{alice, bob}, convs, 6, stop, &st)
				close(done)
			}()
			var stopOnce sync.Once
			stopLoad := func() {
				stopOnce.Do(func() { close(stop) })
				<-done
			}
			t.Cleanup(stopLoad) // also when the test fails half way
			acks := func() int {
				st.mu.Lock()
				defer st.mu.Unlock()
				return st.ok
			}
			// The load is running: some sends are acknowledged.
			testutil.Eventually(t, 30*time.Second, func() error {
				if n := acks(); n < 20 {
					return fmt.Errorf("%d sends acknowledged before the outage", n)
				}
				return nil
			})

			t.Cleanup(func() { services(t, "up", eng.service) }) // whatever happens
			services(t, "down", eng.service)
			downAt := time.Now()
			// /readyz names the engine that is down.
			testutil.Eventually(t, 10*time.Second, func() error {
				if status, body := readyz(a.url); status != 503 || !strings.Contains(body, `"`+eng.check+`"`) {
					return fmt.Errorf("/readyz with %s down: %d %s", eng.service, status, body)
				}
				return nil
			})
			// The outage lasts 10 s under load: its length is the test's
			// subject, not a wait for a condition.
			time.Sleep(10*time.Second - time.Since(downAt))
			services(t, "up", eng.service)
			upAt := time.Now()
			testutil.Eventually(t, 60*time.Second, func() error {
				if status, body := readyz(a.url); status != 200 {
					return fmt.Errorf("/readyz 60 s after %s came back: %d %s", eng.service, status, body)
				}
				return nil
			})
			t.Logf("%s down for %v; ready again %v after it was started", eng.service, upAt.Sub(downAt).Round(100*time.Millisecond), time.Since(upAt).Round(100*time.Millisecond))
			// The load goes on after the recovery until it is acknowledged
			// again: sends acknowledged after the engine came back.
			okAtUp := acks()
			testutil.Eventually(t, 30*time.Second, func() error {
				if n := acks() - okAtUp; n < 20 {
					return fmt.Errorf("%d sends acknowledged since /readyz answered 200 again", n)
				}
				return nil
			})
			stopLoad()
			st.mu.Lock()
			t.Logf("sends: %d acknowledged, %d answered 503 with Retry-After, slowest answer %v", st.ok, st.s503, st.slowest.Round(time.Millisecond))
			if len(st.bad) > 0 {
				t.Errorf("%d bad answers, first: %s", len(st.bad), st.bad[0])
			}
			st.mu.Unlock()

			// Everything acknowledged is delivered once, in order …
			drain(t, "carol on gateway B", carolR, acked, endMarker(t, apiA, alice))
			// … stored …
			for _, cid := range convs {
				r := apiA.do(t, "GET", "/v1/conversations/"+cid+"/messages?limit=200", alice, nil)
				msgs := r.json(t)["messages"].([]any)
				if len(msgs) < min(len(acked[cid]), 200) {
					t.Errorf("%s: %d messages stored, %d acknowledged", cid, len(msgs), len(acked[cid]))
				}
			}
			// … and searchable: the index catches up with the store
			// within 120 s of the engine's return (the bound of issue
			// 13's fault 3, RELIABILITY.md). Every message carries
			// outageWord, so a pass pages through them all, 50 a request.
			unfound := maps.Clone(texts)
			caughtUp := time.Now()
			testutil.Eventually(t, 120*time.Second, func() error {
				for id := range searchAll(t, apiB, bob, outageWord) {
					delete(unfound, id)
				}
				if len(unfound) > 0 {
					return fmt.Errorf("%d of %d acknowledged messages are not searchable", len(unfound), len(texts))
				}
				return nil
			})
			t.Logf("all %d searchable %v after the checks began", len(texts), time.Since(caughtUp).Round(100*time.Millisecond))
		})
	}
}
