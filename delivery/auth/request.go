package auth

import (
	"net/http"
	"strings"
)

// FromRequest returns the bearer token of r: from "Authorization: Bearer
// <token>" (scheme case-insensitive), else, only when allowQuery, from the
// access_token query parameter, which browsers need for WebSocket and
// EventSource. It returns "" when there is none.
func FromRequest(r *http.Request, allowQuery bool) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(strings.TrimSpace(h), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if tok = strings.TrimSpace(tok); tok != "" {
				return tok
			}
		}
	}
	if allowQuery {
		return r.URL.Query().Get("access_token")
	}
	return ""
}
