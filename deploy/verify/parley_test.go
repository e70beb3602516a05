package verify

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// parleyBinary builds cmd/parley of the repository this module sits in.
func parleyBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-verify-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "parley")
		cmd := exec.Command("go", "build", "-o", builtBin, "./cmd/parley")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = &buildError{err: err, out: string(out)}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "go build ./cmd/parley: " + e.err.Error() + "\n" + e.out }

// checkConfig runs `parley check-config args` with exactly env (and PATH).
func checkConfig(bin string, args []string, env map[string]string) (string, error) {
	cmd := exec.Command(bin, append([]string{"check-config"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "warning:") {
		// check-config warns of PARLEY_ variables no flag has: in a
		// manifest that is a typo.
		err = errors.New("check-config warned")
	}
	return string(out), err
}
