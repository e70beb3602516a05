package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestVersionPrintsVersionCommitAndDate(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !regexp.MustCompile(`^parley v\d+\.\d+\.\d+\S* \(commit \S+, built \S+, go`).MatchString(out.String()) {
			t.Errorf("%v printed %q", args, out.String())
		}
	}
}

func TestUnknownFlagErrorComesAfterTheUsage(t *testing.T) {
	var errOut bytes.Buffer
	err := run(context.Background(), []string{"serve", "--frobnicate"}, func(string) string { return "" }, io.Discard, &errOut)
	if err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("want an error naming the flag, got %v", err)
	}
	// main prints the returned error after everything run wrote, so the
	// usage must be written and the error must not be.
	if !strings.Contains(errOut.String(), "usage: parley serve") || strings.Contains(errOut.String(), "frobnicate") {
		t.Fatalf("stderr before the error:\n%s", errOut.String())
	}
}

func TestLogLevelErrorListsTheLevels(t *testing.T) {
	err := run(context.Background(), []string{"--log.level", "loud", "--data-dir", t.TempDir()}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "debug, info, warn or error") {
		t.Fatalf("got %v", err)
	}
}

func TestSecondServerOnTheSameDataDirSaysItIsInUse(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", s.dataDir}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "is in use by another parley process") {
		t.Fatalf("second server on %s: %v", s.dataDir, err)
	}
	if strings.Contains(err.Error(), "temporarily unavailable") {
		t.Fatalf("the engine's words leaked: %v", err)
	}
}
