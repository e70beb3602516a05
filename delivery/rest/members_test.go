package rest

import (
	"testing"
	"time"
)

func TestMemberCacheExpiresAndForgets(t *testing.T) {
	m := newMemberCache()
	now := time.Unix(1000, 0)
	m.now = func() time.Time { return now }
	if m.has("c1", "bob") {
		t.Fatal("empty cache vouches for bob")
	}
	m.add("c1", "bob")
	m.add("c1", "carol")
	if !m.has("c1", "bob") || m.has("c2", "bob") {
		t.Fatal("cache keyed wrongly")
	}
	m.forget("c1", "bob")
	if m.has("c1", "bob") || !m.has("c1", "carol") {
		t.Fatal("forget took the wrong entry")
	}
	now = now.Add(memberTTL + time.Second)
	if m.has("c1", "carol") {
		t.Fatal("an entry outlived its TTL")
	}
}
