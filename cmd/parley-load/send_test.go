package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The parley binary the tests run, built once per test binary.
var (
	buildOnce sync.Once
	parleyBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if parleyBin != "" {
		os.RemoveAll(filepath.Dir(parleyBin))
	}
	os.Exit(code)
}

// startParley builds and runs an embedded parley serve, returning its URL.
func startParley(t *testing.T) string {
	t.Helper()
	u, _ := startParleyProc(t)
	return u
}

// startParleyProc is startParley that also returns the server's pid.
func startParleyProc(t *testing.T) (string, int) {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-load-test")
		if err != nil {
			buildErr = err
			return
		}
		parleyBin = filepath.Join(dir, "parley")
		if out, err := exec.Command("go", "build", "-o", parleyBin, "../parley").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build parley: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	bin := parleyBin
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--send-rate", "100000", "--send-burst", "100000")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if i := strings.Index(sc.Text(), "http://"); i >= 0 {
				got <- sc.Text()[i:]
			}
		}
	}()
	select {
	case u := <-got:
		return u, cmd.Process.Pid
	case <-time.After(60 * time.Second):
		t.Fatal("parley did not start")
		return "", 0
	}
}

func TestSendModeReportsEveryAcknowledgedSend(t *testing.T) {
	url := startParley(t)
	var out bytes.Buffer
	args := []string{"-url", url + "," + url, "-mode", "send", "-rate", "200", "-duration", "1s", "-convs", "4", "-senders", "2"}
	if err := run(context.Background(), args, &out); err != nil {
		t.Fatalf("send mode: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "200 sends offered at 200/s") || !strings.Contains(out.String(), ": 200 acknowledged") {
		t.Fatalf("report: %s", out.String())
	}
}

func TestSendModeRefusesBadArguments(t *testing.T) {
	for want, args := range map[string][]string{
		"--convs of at least --senders": {"-mode", "send", "-convs", "1", "-senders", "2"},
		"only --mode send":              {"-mode", "burst", "-url", "http://a,http://b"},
		"at least 1":                    {"-mode", "send", "-rate", "0"},
		"bad --url":                     {"-mode", "send", "-url", "http://a,nowhere"},
	} {
		err := run(context.Background(), append([]string{"-url", "http://127.0.0.1:1"}, args...), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want an error saying %q", args, err, want)
		}
	}
}
