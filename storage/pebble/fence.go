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
	// The table of locks is itself split, so that Commits taking and
	// dropping their locks do not all queue on one mutex.
	shards [fenceShards]fenceShard
}

const fenceShards = 64

type fenceShard struct {
	mu    sync.Mutex
	locks map[string]*fenceLock
}

type fenceLock struct {
	mu    sync.Mutex
	name  string
	shard *fenceShard
	users int // holders and waiters; guarded by shard.mu
}

// partitionFence names the lock of a partition's keys.
func partitionFence(partition int) string { return "p\x00" + strconv.Itoa(partition) }

// conversationFence names the lock of a conversation's keys.
func conversationFence(cid string) string { return "c\x00" + cid }

// shard returns the part of the table that holds name (FNV-1a).
func (f *fences) shard(name string) *fenceShard {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h ^= uint32(name[i])
		h *= 16777619
	}
	return &f.shards[h%fenceShards]
}

// lock takes the named locks, each once, in ascending order of name (so
// callers that share names cannot deadlock; a shard's mutex is never held
// while waiting for a lock), and returns what unlock needs.
func (f *fences) lock(names ...string) []*fenceLock {
	slices.Sort(names)
	names = slices.Compact(names)
	held := make([]*fenceLock, len(names))
	for i, n := range names {
		sh := f.shard(n)
		sh.mu.Lock()
		if sh.locks == nil {
			sh.locks = map[string]*fenceLock{}
		}
		l := sh.locks[n]
		if l == nil {
			l = &fenceLock{name: n, shard: sh}
			sh.locks[n] = l
		}
		l.users++
		sh.mu.Unlock()
		held[i] = l
	}
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
	for _, l := range held {
		sh := l.shard
		sh.mu.Lock()
		if l.users--; l.users == 0 {
			delete(sh.locks, l.name)
		}
		sh.mu.Unlock()
	}
}
