package web

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServiceWorkerIsServedAtTheRoot: /sw.js, the Web Push service
// worker, is served from the root (so its scope can be the whole client)
// as JavaScript, and handles push and notificationclick.
func TestServiceWorkerIsServedAtTheRoot(t *testing.T) {
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/sw.js", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET /sw.js: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	for _, want := range []string{"addEventListener('push'", "addEventListener('notificationclick'", "showNotification"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("sw.js lacks %s", want)
		}
	}
}
