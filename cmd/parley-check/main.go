// Command parley-check checks a recorded history of a Parley run for
// broken delivery promises: lost, duplicate, reordered or skipped events,
// inconsistent acknowledgements, and a search index that disagrees with
// the store (package check says exactly what each means).
//
//	parley-check -history run.jsonl
//	parley-check -history run.jsonl -url http://127.0.0.1:8080 -user checker -query chk42 -wait 120s -parallel 8
//
// With -url it first reads, over the public API, the store's log of every
// conversation the history names and what search finds there for -query
// (waiting up to -wait for the indexer to catch up), as the user of
// -token, or of -user through dev sign-in; -parallel conversations at
// once (4 unless set). It prints each anomaly class
// with its count and first examples (-json for the report as JSON) and
// exits 1 when any count is not 0.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/cmd/parley-check/check"
)

// errInvalid is a history with anomalies; main exits 1 on it.
var errInvalid = errors.New("the history has anomalies")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	stop()
	switch {
	case errors.Is(err, errInvalid):
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "parley-check:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("parley-check", flag.ContinueOnError)
	var (
		historyPath = fs.String("history", "", "history file, one JSON record per line (- for stdin)")
		src         check.Source
		user        = fs.String("user", "", "sign in as this user with dev auth to read the store and index (instead of -token)")
		wait        = fs.Duration("wait", 2*time.Minute, "how long the index may take to agree with the store")
		asJSON      = fs.Bool("json", false, "print the report as JSON")
		out         = fs.String("out", "", "also write the history, with what was read from the server, to this file")
	)
	fs.StringVar(&src.URL, "url", "", "server to read the store's log and the index from (default: check the history alone)")
	fs.StringVar(&src.Token, "token", "", "bearer token of a member of every conversation")
	fs.StringVar(&src.Query, "query", "", "a word every message of the run holds, to read the index with (default: the index is not read)")
	fs.IntVar(&src.Parallel, "parallel", 4, "conversations read from the server at once (search answers 50 messages a page, so a long run read one at a time takes long)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if src.Parallel < 1 {
		return fmt.Errorf("-parallel %d: want at least 1", src.Parallel)
	}
	if *historyPath == "" {
		return errors.New("-history is required")
	}
	var r io.Reader = stdin
	if *historyPath != "-" {
		f, err := os.Open(*historyPath)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	h, err := check.Read(r)
	if err != nil {
		return err
	}
	if src.URL != "" {
		src.URL = strings.TrimSuffix(src.URL, "/")
		if src.Token == "" && *user != "" {
			if src.Token, err = devToken(ctx, src.URL, *user); err != nil {
				return err
			}
		}
		src.IndexWait = *wait
		read, err := src.Collect(ctx, check.Conversations(h))
		if err != nil {
			return err
		}
		h = append(h, read...)
	}
	if *out != "" {
		var b bytes.Buffer
		if err := check.Write(&b, h); err != nil {
			return err
		}
		if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	rep := check.Check(h)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errInvalid
	}
	return nil
}

// devToken signs in with dev auth.
func devToken(ctx context.Context, base, user string) (string, error) {
	body, _ := json.Marshal(map[string]string{"user_id": user})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/auth/dev", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("dev sign-in: %w", err)
	}
	defer res.Body.Close()
	var v struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil || res.StatusCode != http.StatusOK || v.Token == "" {
		return "", fmt.Errorf("dev sign-in as %s: status %d", user, res.StatusCode)
	}
	return v.Token, nil
}
