package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Python returns the interpreter of deploy/local/pyenv, the Python that
// the independent implementations under testdata run with, installing it
// when missing (it needs PyPI the first time).
func Python(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(filepath.Join(moduleRoot(t), "deploy", "local", "pyenv")).Output()
	if err != nil {
		var stderr []byte
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("deploy/local/pyenv: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// RunPython runs script with python, in as JSON on its stdin, and decodes
// the JSON it prints into out; it fails t, with the script's stderr, when
// the script fails.
func RunPython(t testing.TB, python, script string, in, out any) {
	t.Helper()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("%s: %v: %s", script, err, res)
	}
}

// moduleRoot is the folder of go.mod above the test's working directory.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
