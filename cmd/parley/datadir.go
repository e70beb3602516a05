package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive lock on dir for the life of the process,
// so that a second server on the same data dir stops with a sentence a
// person understands instead of an engine's "resource temporarily
// unavailable". The kernel drops the lock when the process exits, even
// on a crash; release closes it earlier.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "parley.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("data dir %s is in use by another parley process (stop it, or give this one its own --data-dir)", abs)
		}
		return nil, fmt.Errorf("data dir: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
