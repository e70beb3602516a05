package rest

import (
	"sync"
	"time"
)

// limiter is a token bucket per user.
type limiter struct {
	rate  float64
	burst float64
	mu    sync.Mutex
	users map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), users: map[string]*bucket{}}
}

// allow takes one token for user, or says how long until one is free.
func (l *limiter) allow(user string) (bool, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.users[user]
	if b == nil {
		if len(l.users) > 100_000 {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.users[user] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep drops full buckets so the map does not grow without bound.
func (l *limiter) sweep(now time.Time) {
	for u, b := range l.users {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.users, u)
		}
	}
}
