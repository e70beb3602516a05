package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parleychat/parley/chat"
	"github.com/parleychat/parley/delivery/httpx"
)

// failingChecks runs every dependency check with a shared 2 s bound and
// returns the failing ones by name.
func failingChecks(ctx context.Context, checks map[string]func(context.Context) error) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	// Side by side, so one engine that hangs cannot use up the others'
	// time and get them reported as failing too.
	var mu sync.Mutex
	var wg sync.WaitGroup
	failing := map[string]string{}
	for name, check := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := check(ctx); err != nil {
				mu.Lock()
				failing[name] = err.Error()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failing
}

// optionalChecks are the dependencies chat does not need: search
// (index) and attachments (blobs). A readiness probe that routes traffic
// may leave them out with ?except=index,blobs, so that a search or
// storage outage does not take every gateway out of service while sends,
// realtime and history work (docs/operations.md, "Which probe to route
// on"). The log, the store, the fan-out and a drain always count.
var optionalChecks = map[string]bool{"index": true, "blobs": true}

// writeReadiness answers 200 when nothing fails, else 503 naming every
// failing check. The names r's except parameter lists (only optional
// ones: see optionalChecks; anything else is 400) are
// still named in the body, under "excepted", but do not make it 503.
func writeReadiness(w http.ResponseWriter, r *http.Request, failing map[string]string) {
	excepted := map[string]string{}
	if v := r.URL.Query().Get("except"); v != "" {
		for _, name := range strings.Split(v, ",") {
			if !optionalChecks[name] {
				httpx.WriteCode(w, r, chat.CodeInvalid, fmt.Sprintf("except: %q is not an optional check (index, blobs)", name))
				return
			}
			if why, ok := failing[name]; ok {
				excepted[name] = why
				delete(failing, name)
			}
		}
	}
	if len(failing) > 0 {
		w.Header().Set("Retry-After", "2")
		body := map[string]any{"status": "unavailable", "failing": failing}
		if len(excepted) > 0 {
			body["excepted"] = excepted
		}
		httpx.WriteJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	if len(excepted) > 0 {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "excepted": excepted})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// OpsHandler serves /healthz, /readyz and /metrics for a node that runs no
// gateway role (sequencer, indexer, media), so that it can be probed and
// scraped like a gateway. Every other path is 404.
func OpsHandler(checks map[string]func(context.Context) error, g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeReadiness(w, r, failingChecks(r.Context(), checks))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "this node runs no gateway role"}})
	})
	return mux
}
