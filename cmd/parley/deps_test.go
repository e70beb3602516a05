package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The binary must not link go-elasticsearch's typed API: search/elastic
// speaks esapi over the transport, and the typed API alone is more than
// half of a first build's packages.
func TestBinaryLinksNoTypedElasticsearchAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	pkgs := strings.Fields(string(out))
	for _, p := range pkgs {
		if strings.Contains(p, "go-elasticsearch/v8/typedapi") || p == "github.com/elastic/go-elasticsearch/v8" {
			t.Fatalf("cmd/parley links %s (and %d packages in all)", p, len(pkgs))
		}
		// What only tests use: the API reference validators, and the
		// Kubernetes and Compose loaders of deploy/verify.
		for _, testOnly := range []string{"github.com/getkin/kin-openapi", "github.com/santhosh-tekuri/jsonschema", "k8s.io/", "github.com/compose-spec/"} {
			if strings.HasPrefix(p, testOnly) {
				t.Fatalf("cmd/parley links %s, which only tests may use", p)
			}
		}
	}
}
