package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// logLevelHandler reads (GET) and changes (PUT, the body a level name:
// debug, info, warn, error, or an offset such as warn+2) the process's log
// level at run time, without a restart. A PUT answers the new level; a
// bad level is a 400 and changes nothing.
func logLevelHandler(level *slog.LevelVar, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, 64))
			if err != nil {
				http.Error(w, "reading the level: "+err.Error(), http.StatusBadRequest)
				return
			}
			var l slog.Level
			if err := l.UnmarshalText(bytes.TrimSpace(body)); err != nil {
				http.Error(w, "not a level (want debug, info, warn or error)", http.StatusBadRequest)
				return
			}
			prev := level.Level()
			level.Set(l)
			logger.Warn("log level changed", "from", prev.String(), "to", l.String())
		default:
			w.Header().Set("Allow", "GET, PUT")
			http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, strings.ToLower(level.Level().String())+"\n")
	})
}

// serveDebug serves Go's profiles on addr until ctx is done: an operator's
// tool for finding where a node spends its time, on loopback only
// (validate refuses anything else).
func serveDebug(ctx context.Context, addr string, logger *slog.Logger, level *slog.LevelVar) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/debug/loglevel", logLevelHandler(level, logger))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	logger.Info("serving profiles", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	go func() { _ = srv.Serve(ln) }()
	return nil
}
