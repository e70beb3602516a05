package elastic

import (
	"html"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Elasticsearch marks every match in the whole text (HTML-encoded, so the
// tags are unambiguous); the snippets are cut here, so that they look like
// the embedded index's: the whole of a short text, up to three windows
// around the first matches of a long one, escaped the same way.
const (
	markOpen  = "<mark>"
	markClose = "</mark>"
	// wholeRunes is the longest text shown whole rather than in snippets.
	wholeRunes = 160
	// contextRunes is how much text a snippet keeps on each side of a match.
	contextRunes = 60
	// maxSnippets bounds the snippets of one message.
	maxSnippets = 3
	// maxSnippetRunes bounds a snippet as rendered (tags and entities
	// included), even for texts that are nothing but matches.
	maxSnippetRunes = 1000
	ellipsis        = "…"
)

// span is a byte range [start, end) of a text.
type span struct{ start, end int }

// highlights returns the snippets of text given Elasticsearch's
// highlighted versions of it: none when there is none, or when it is not
// the text with marks (then the marks' positions are unknown).
func highlights(text string, marked []string) []string {
	for _, m := range marked {
		plain, spans, ok := parseMarked(m)
		if ok && plain == text {
			return snippets(text, spans)
		}
	}
	return []string{}
}

// parseMarked reads a highlight of Elasticsearch's html encoder: escaped
// text with matches between markOpen and markClose. It returns the
// unescaped text and the byte ranges of the matches in it.
func parseMarked(h string) (text string, spans []span, ok bool) {
	var b strings.Builder
	inside := false
	for h != "" {
		i := strings.IndexByte(h, '<')
		if i < 0 {
			i = len(h)
		}
		if strings.ContainsRune(h[:i], '>') {
			return "", nil, false // the encoder escapes both
		}
		b.WriteString(html.UnescapeString(h[:i]))
		h = h[i:]
		switch {
		case h == "":
		case !inside && strings.HasPrefix(h, markOpen):
			spans = append(spans, span{start: b.Len()})
			inside, h = true, h[len(markOpen):]
		case inside && strings.HasPrefix(h, markClose):
			spans[len(spans)-1].end = b.Len()
			inside, h = false, h[len(markClose):]
		default:
			return "", nil, false
		}
	}
	if inside {
		return "", nil, false
	}
	return b.String(), spans, true
}

// snippets returns HTML snippets of text: the spans wrapped in
// <mark>…</mark> and every other character escaped, with an ellipsis
// where text was cut. No valid span, no snippet.
func snippets(text string, spans []span) []string {
	spans = cleanSpans(text, spans)
	if len(spans) == 0 {
		return []string{}
	}
	if utf8.RuneCountInString(text) <= wholeRunes {
		return []string{render(text, span{0, len(text)}, spans)}
	}
	var out []string
	end := 0 // where the previous window ended
	for i := 0; i < len(spans) && len(out) < maxSnippets; {
		first := spans[i]
		w := span{start: max(wordStart(text, first.start, contextRunes), end), end: wordEnd(text, first.end, contextRunes)}
		// A match the window would cut ends it just before.
		for _, s := range spans[i+1:] {
			if s.start >= w.end {
				break
			}
			if s.end > w.end {
				w.end = s.start
				break
			}
		}
		out = append(out, render(text, w, spans))
		end = w.end
		for i < len(spans) && spans[i].end <= w.end {
			i++
		}
	}
	return out
}

// cleanSpans returns the spans that lie inside text on rune boundaries,
// sorted, with overlapping ones merged.
func cleanSpans(text string, spans []span) []span {
	boundary := func(i int) bool { return i == len(text) || utf8.RuneStart(text[i]) }
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		if s.start >= 0 && s.start < s.end && s.end <= len(text) && boundary(s.start) && boundary(s.end) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b span) int { return a.start - b.start })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && s.start < merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// wordStart returns the offset n runes before i, moved forward to the
// start of a word when one begins within the first third of the way.
func wordStart(text string, i, n int) int {
	j := i
	for k := 0; k < n && j > 0; k++ {
		_, size := utf8.DecodeLastRuneInString(text[:j])
		j -= size
	}
	if j == 0 {
		return 0
	}
	if sp := strings.IndexFunc(text[j:j+(i-j)/3], unicode.IsSpace); sp >= 0 {
		_, size := utf8.DecodeRuneInString(text[j+sp:])
		return j + sp + size
	}
	return j
}

// wordEnd returns the offset n runes after i, moved back to the end of a
// word when one ends within the last third of the way.
func wordEnd(text string, i, n int) int {
	j := i
	for k := 0; k < n && j < len(text); k++ {
		_, size := utf8.DecodeRuneInString(text[j:])
		j += size
	}
	if j == len(text) {
		return j
	}
	from := j - (j-i)/3
	if sp := strings.LastIndexFunc(text[from:j], unicode.IsSpace); sp >= 0 {
		return from + sp
	}
	return j
}

// render writes the window w of text as HTML, marking the spans that lie
// wholly inside it, and stops (with an ellipsis) before maxSnippetRunes.
func render(text string, w span, spans []span) string {
	var b strings.Builder
	runes := 0
	write := func(s string) {
		b.WriteString(s)
		runes += utf8.RuneCountInString(s)
	}
	budget := maxSnippetRunes - utf8.RuneCountInString(ellipsis)
	if w.start > 0 {
		write(ellipsis)
	}
	// plain writes text[from:to] escaped, rune by rune, while it fits.
	plain := func(from, to int) bool {
		for _, r := range text[from:to] {
			e := html.EscapeString(string(r))
			if runes+utf8.RuneCountInString(e) > budget {
				return false
			}
			write(e)
		}
		return true
	}
	pos := w.start
	for _, s := range spans {
		if s.start < pos || s.end > w.end {
			continue
		}
		if !plain(pos, s.start) {
			write(ellipsis)
			return b.String()
		}
		m := markOpen + html.EscapeString(text[s.start:s.end]) + markClose
		if runes+utf8.RuneCountInString(m) > budget {
			write(ellipsis)
			return b.String()
		}
		write(m)
		pos = s.end
	}
	if !plain(pos, w.end) {
		write(ellipsis)
		return b.String()
	}
	if w.end < len(text) {
		write(ellipsis)
	}
	return b.String()
}
