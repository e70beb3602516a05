package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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

func writeReadiness(w http.ResponseWriter, failing map[string]string) {
	if len(failing) > 0 {
		w.Header().Set("Retry-After", "2")
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing})
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
		writeReadiness(w, failingChecks(r.Context(), checks))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "not_found", "message": "this node runs no gateway role"}})
	})
	return mux
}
