package pebble

import (
	"slices"
	"strconv"
	"sync"
)

// fences are the locks that serialize the read-check-write of Commits,
// Own and Refuse: one per name, a partition's (its epoch, head, refusal
// floors and claims) or a conversation's (its state, events, messages),
// made when first wanted and dropped when nobody holds or waits for it.
//
// A lock per name, rather than a fixed set of stripes the names hash
// onto, means that Commits of different partitions never wait for each
// other: with 64 stripes, several partitions' Commits held at once (the
// embedded sequencer's --sequencer.batches) nearly always shared a stripe,
// so each waited for the other's WAL sync instead of sharing it.
type fences struct {
	mu    sync.Mutex
	locks map[string]*fenceLock
}

type fenceLock struct {
	mu    sync.Mutex
	name  string
	users int // holders and waiters; guarded by fences.mu
}

// partitionFence names the lock of a partition's keys.
func partitionFence(partition int) string { return "p\x00" + strconv.Itoa(partition) }

// conversationFence names the lock of a conversation's keys.
func conversationFence(cid string) string { return "c\x00" + cid }

// lock takes the named locks, each once, in ascending order of name (so
// callers that share names cannot deadlock), and returns what unlock
// needs.
func (f *fences) lock(names ...string) []*fenceLock {
	slices.Sort(names)
	names = slices.Compact(names)
	held := make([]*fenceLock, len(names))
	f.mu.Lock()
	if f.locks == nil {
		f.locks = map[string]*fenceLock{}
	}
	for i, n := range names {
		l := f.locks[n]
		if l == nil {
			l = &fenceLock{name: n}
			f.locks[n] = l
		}
		l.users++
		held[i] = l
	}
	f.mu.Unlock()
	for _, l := range held {
		l.mu.Lock()
	}
	return held
}

// unlock releases locks taken by one call of lock, forgetting those that
// nobody else holds or waits for.
func (f *fences) unlock(held []*fenceLock) {
	for _, l := range held {
		l.mu.Unlock()
	}
	f.mu.Lock()
	for _, l := range held {
		if l.users--; l.users == 0 {
			delete(f.locks, l.name)
		}
	}
	f.mu.Unlock()
}
