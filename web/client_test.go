package web

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestReferenceClientServedFromItsPackage: the web client keeps loading
// the reference client at /js/parley-client.js, and what it loads is the
// package's file, byte for byte.
func TestReferenceClientServedFromItsPackage(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("client", "parley-client.js"))
	if err != nil {
		t.Fatal(err)
	}
	res := get(t, Handler(), http.MethodGet, "/js/parley-client.js", nil)
	got, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("/js/parley-client.js: %d, %d bytes, want the package's %d", res.StatusCode, len(got), len(want))
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/javascript; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if _, err := os.Stat(filepath.Join("static", "js", "parley-client.js")); err == nil {
		t.Error("a second copy of the client lives in static/js; the package is its only home")
	}
}

// TestClientPackageTypeChecks runs the package's own test: tsc (from npm,
// the version package-lock.json pins) checks index.d.ts and an example of
// use against it, and node's test runner checks that every export and
// method of parley-client.js is declared.
func TestClientPackageTypeChecks(t *testing.T) {
	dir := "client"
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to check the client package's TypeScript declarations: %v", tool, err)
		}
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	want := lock.Packages["node_modules/typescript"].Version
	var have struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(dir, "node_modules", "typescript", "package.json")); err == nil {
		_ = json.Unmarshal(b, &have)
	}
	if want == "" || have.Version != want {
		runTool(t, dir, "npm", "ci", "--no-audit", "--no-fund")
	}
	runTool(t, dir, "npm", "test")
}

func runTool(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v in web/%s: %v\n%s", name, args, dir, err, out)
	}
}
