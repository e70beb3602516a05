package pebble

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/parleychat/parley/chat"
)

// TestDiskErrorsAreClassifiedAtTheEdge: what the disk or Pebble answers
// reaches callers as a code of chat.DispositionOf's table, never as an
// unclassified (500) error, however deep it is wrapped; a disk that
// refuses work is unavailable (503, try again later), corruption is
// internal.
func TestDiskErrorsAreClassifiedAtTheEdge(t *testing.T) {
	disk := func(errno syscall.Errno) error {
		return fmt.Errorf("pebble: commit: %w", &fs.PathError{Op: "write", Path: "/data/000123.log", Err: errno})
	}
	for _, c := range []struct {
		err      error
		code     string
		message  string
		httpCode int
	}{
		{disk(syscall.ENOSPC), chat.CodeUnavailable, "the store's disk is full", 503},
		{disk(syscall.EDQUOT), chat.CodeUnavailable, "the store's disk is full", 503},
		{disk(syscall.EIO), chat.CodeUnavailable, "the store's disk failed to read or write", 503},
		{disk(syscall.EROFS), chat.CodeUnavailable, "the store's disk is read-only", 503},
		{disk(syscall.EMFILE), chat.CodeUnavailable, "the store ran out of file descriptors", 503},
		{fmt.Errorf("sstable 000042: %w", pebble.ErrCorruption), chat.CodeInternal, "the store's data is corrupt", 500},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), chat.CodeUnavailable, "ran out of time", 503},
	} {
		got := classify("pebble: put device", fmt.Errorf("pebble: put device: %w", c.err))
		var ce *chat.Error
		if !errors.As(got, &ce) {
			t.Errorf("%v: unclassified %v", c.err, got)
			continue
		}
		if ce.Code != c.code || ce.Message != c.message || ce.Op != "pebble: put device" {
			t.Errorf("%v: %s %q (op %q), want %s %q", c.err, ce.Code, ce.Message, ce.Op, c.code, c.message)
		}
		if d := chat.DispositionOf(ce.Code); d.HTTPStatus != c.httpCode {
			t.Errorf("%v: HTTP %d, want %d", c.err, d.HTTPStatus, c.httpCode)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("%v: the classified error lost its cause", c.err)
		}
	}
	nf := notFound("pebble: device", "device")
	if got := classify("pebble: device", fmt.Errorf("x: %w", nf)); chat.ErrorCode(got) != chat.CodeNotFound {
		t.Errorf("a classified error was reclassified: %v", got)
	}
	if classify("op", nil) != nil {
		t.Error("nil classified as an error")
	}
}
