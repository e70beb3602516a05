package check

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Source is a running Parley, read over its public API to add the store's
// log and the index to a history.
type Source struct {
	// URL is the server's origin, e.g. "http://127.0.0.1:8080".
	URL string
	// Token is a bearer token of a user who is a member of every
	// conversation read.
	Token string
	// Query is a word every message of the run holds, so that searching
	// for it in a conversation finds all of them; empty skips the index.
	Query string
	// IndexWait bounds how long Collect waits, in all, for search to
	// agree with the store (the indexer catching up); what search finds
	// then is what the history gets.
	IndexWait time.Duration
	// Client makes the requests; nil means http.DefaultClient.
	Client *http.Client
	// Parallel is how many conversations are read at once (0 means one):
	// search answers 50 results a page, so a long history read one
	// conversation at a time takes longer than the run that made it.
	Parallel int
}

// Conversations are the conversations a history names, sorted.
func Conversations(h History) []string {
	set := map[string]bool{}
	for _, r := range h {
		if r.ConversationID != "" {
			set[r.ConversationID] = true
		}
	}
	return sortedKeys(set)
}

// Collect reads the store's log (GET …/events) of each conversation and,
// with a Query, the messages search finds in it, and returns them as
// Stored, Indexed and Scan records, conversation by conversation in the
// order of cids. The index is read again, every 250 ms, until it agrees
// with the store or IndexWait has passed since Collect started; what it
// found last is returned.
func (s Source) Collect(ctx context.Context, cids []string) (History, error) {
	deadline := time.Now().Add(s.IndexWait)
	per := make([]History, len(cids))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(s.Parallel, 1))
	for i, cid := range cids {
		g.Go(func() error {
			h, err := s.collect(ctx, deadline, cid)
			per[i] = h
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return slices.Concat(per...), nil
}

// collect is Collect of one conversation.
func (s Source) collect(ctx context.Context, deadline time.Time, cid string) (History, error) {
	out, err := s.storeLog(ctx, cid)
	if err != nil {
		return nil, err
	}
	scan := Record{Kind: KindScan, ConversationID: cid, Store: true}
	if s.Query == "" {
		return append(out, scan), nil
	}
	found, err := s.searchUntil(ctx, deadline, cid, undeleted(out))
	if err != nil {
		return nil, err
	}
	scan.Index = true
	out = append(out, scan)
	for _, id := range found {
		out = append(out, Record{Kind: KindIndexed, ConversationID: cid, MessageID: id})
	}
	return out, nil
}

// searchUntil searches cid until it finds exactly want or deadline
// passes, and returns what it found last.
func (s Source) searchUntil(ctx context.Context, deadline time.Time, cid string, want []string) ([]string, error) {
	for {
		found, err := s.search(ctx, cid)
		if err != nil {
			return nil, err
		}
		if slices.Equal(found, want) || time.Now().After(deadline) {
			return found, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("check: search %s: %w", cid, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// undeleted is the sorted ids of the messages a log created and did not
// delete.
func undeleted(log History) []string {
	live := map[string]bool{}
	for _, r := range log {
		switch r.Type {
		case "message.created":
			live[r.MessageID] = true
		case "message.deleted":
			delete(live, r.MessageID)
		}
	}
	return sortedKeys(live)
}

func (s Source) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("check: GET %s: %w", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("check: GET %s: %w", path, err)
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("check: GET %s: %d %s", path, res.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("check: GET %s: %w", path, err)
	}
	return nil
}

// storeLog reads a conversation's whole durable log.
func (s Source) storeLog(ctx context.Context, cid string) (History, error) {
	var out History
	var after int64
	for {
		var page struct {
			Events  []map[string]any `json:"events"`
			HasMore bool             `json:"has_more"`
		}
		path := "/v1/conversations/" + url.PathEscape(cid) + "/events?limit=200&after=" + strconv.FormatInt(after, 10)
		if err := s.get(ctx, path, &page); err != nil {
			return nil, err
		}
		for _, ev := range page.Events {
			r, ok := EventRecord("", "", ev)
			if !ok {
				return nil, fmt.Errorf("check: the log of %s holds an event without seq: %v", cid, ev)
			}
			r.Kind, r.Time = KindStored, time.Time{}
			out = append(out, r)
			after = max(after, r.Seq)
		}
		if !page.HasMore || len(page.Events) == 0 {
			return out, nil
		}
	}
}

// search returns the sorted ids of the messages of cid search finds for
// Query, over every page.
func (s Source) search(ctx context.Context, cid string) ([]string, error) {
	var ids []string
	token := ""
	for {
		q := url.Values{"q": {s.Query}, "conversation_id": {cid}, "limit": {"50"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var page struct {
			Results []struct {
				Message struct {
					ID string `json:"id"`
				} `json:"message"`
			} `json:"results"`
			Next *string `json:"next_page_token"`
		}
		if err := s.get(ctx, "/v1/search?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		for _, r := range page.Results {
			ids = append(ids, r.Message.ID)
		}
		if page.Next == nil || *page.Next == "" || len(page.Results) == 0 {
			break
		}
		token = *page.Next
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
