package gateway

import (
	"context"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/parleychat/parley/chat"
)

// presenceGrace is how long a user stays online after its last connection
// closes, so a quick reconnect does not flap.
const presenceGrace = 10 * time.Second

// presence tracks which users are online on this gateway: online while at
// least one connection is open, offline presenceGrace after the last one
// closes. Changes are announced to everyone who shares a conversation.
type presence struct {
	g     *Gateway
	grace time.Duration

	mu    sync.Mutex
	users map[string]*presenceState
}

type presenceState struct {
	conns  int
	online bool
	timer  *time.Timer
}

func newPresence(g *Gateway, grace time.Duration) *presence {
	return &presence{g: g, grace: grace, users: map[string]*presenceState{}}
}

func (p *presence) connected(user string) {
	p.mu.Lock()
	st := p.users[user]
	if st == nil {
		st = &presenceState{}
		p.users[user] = st
	}
	st.conns++
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	announce := !st.online
	st.online = true
	p.mu.Unlock()
	if announce {
		go p.announce(user, true)
	}
}

func (p *presence) disconnected(user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.users[user]
	if st == nil || st.conns == 0 {
		return
	}
	st.conns--
	if st.conns > 0 {
		return
	}
	st.timer = time.AfterFunc(p.grace, func() {
		p.mu.Lock()
		if st.conns > 0 || !st.online || p.users[user] != st {
			p.mu.Unlock()
			return
		}
		delete(p.users, user)
		p.mu.Unlock()
		p.announce(user, false)
	})
}

func (p *presence) isOnline(user string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.users[user]
	return st != nil && st.online
}

// announce tells every user who shares a conversation with user.
func (p *presence) announce(user string, online bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ms, err := p.g.store.Memberships(ctx, user)
	if err != nil {
		p.g.logger.Warn("presence: reading memberships", "err", err)
		return
	}
	seen := map[string]bool{}
	var to []string
	for _, m := range ms {
		if !m.Active {
			continue
		}
		c, err := p.g.store.Conversation(ctx, m.ConversationID)
		if err != nil {
			continue
		}
		for _, u := range c.Members {
			if !seen[u] {
				seen[u] = true
				to = append(to, u)
			}
		}
	}
	if !seen[user] {
		to = append(to, user)
	}
	on := online
	p.g.hub.Ephemeral(to, chat.Ephemeral{Type: chat.EventPresence, UserID: user, Online: &on})
}

func (g *Gateway) getPresence(w http.ResponseWriter, r *http.Request) {
	u := userOf(r)
	c, err := g.member(r.Context(), r.PathValue("cid"), u.ID)
	if err != nil {
		g.writeErr(w, r, err)
		return
	}
	online := []string{}
	for _, m := range c.Members {
		if g.presence.isOnline(m) {
			online = append(online, m)
		}
	}
	sort.Strings(online)
	writeJSON(w, http.StatusOK, map[string]any{"online": online})
}
