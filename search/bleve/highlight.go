package bleve

import (
	"html"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bleve's own HTML highlighter escapes correctly, but drops the snippet of
// a match followed by a literal U+FFFD (it reads it as invalid UTF-8), so
// snippets are made here from the match locations.
const (
	// wholeRunes is the longest text shown whole rather than in snippets.
	wholeRunes = 160
	// contextRunes is how much text a snippet keeps on each side of a match.
	contextRunes = 60
	// maxSnippets bounds the snippets of one message.
	maxSnippets = 3
	ellipsis    = "…"
)

// span is a byte range [start, end) of a text.
type span struct{ start, end int }

// highlight returns HTML snippets of text: the spans wrapped in
// <mark>…</mark> and every other character escaped. A short text is one
// snippet; a long one gives up to maxSnippets snippets around its first
// matches, with an ellipsis where text was cut. No valid span, no snippet.
func highlight(text string, spans []span) []string {
	spans = cleanSpans(text, spans)
	if len(spans) == 0 {
		return []string{}
	}
	if utf8.RuneCountInString(text) <= wholeRunes {
		return []string{render(text, span{0, len(text)}, spans)}
	}
	var windows []span
	for i := 0; i < len(spans) && len(windows) < maxSnippets; {
		s := spans[i]
		w := span{back(text, s.start, contextRunes), forward(text, s.end, contextRunes)}
		if n := len(windows); n > 0 && w.start < windows[n-1].end {
			w.start = windows[n-1].end
		}
		// Never cut a match: end the window before one it would split.
		for _, o := range spans[i+1:] {
			if o.start >= w.end {
				break
			}
			if o.end > w.end {
				w.end = o.start
				break
			}
		}
		windows = append(windows, w)
		for i < len(spans) && spans[i].end <= w.end {
			i++
		}
	}
	out := make([]string, len(windows))
	for i, w := range windows {
		out[i] = render(text, w, spans)
	}
	return out
}

// cleanSpans returns the spans that lie inside text on rune boundaries,
// sorted and with overlapping ones merged.
func cleanSpans(text string, spans []span) []span {
	ok := func(i int) bool { return i == len(text) || utf8.RuneStart(text[i]) }
	out := make([]span, 0, len(spans))
	for _, s := range spans {
		if s.start >= 0 && s.start < s.end && s.end <= len(text) && ok(s.start) && ok(s.end) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b span) int { return a.start - b.start })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && s.start <= merged[n-1].end {
			merged[n-1].end = max(merged[n-1].end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	return merged
}

// back returns the offset n runes before i, moved forward to the start of
// a word when one begins within the first third of the way.
func back(text string, i, n int) int {
	j := i
	for k := 0; k < n && j > 0; k++ {
		_, size := utf8.DecodeLastRuneInString(text[:j])
		j -= size
	}
	if j == 0 {
		return 0
	}
	limit := j + (i-j)/3
	if sp := strings.IndexFunc(text[j:limit], unicode.IsSpace); sp >= 0 {
		_, size := utf8.DecodeRuneInString(text[j+sp:])
		return j + sp + size
	}
	return j
}

// forward returns the offset n runes after i, moved back to the end of a
// word when one ends within the last third of the way.
func forward(text string, i, n int) int {
	j := i
	for k := 0; k < n && j < len(text); k++ {
		_, size := utf8.DecodeRuneInString(text[j:])
		j += size
	}
	if j == len(text) {
		return j
	}
	limit := j - (j-i)/3
	if sp := strings.LastIndexFunc(text[limit:j], unicode.IsSpace); sp >= 0 {
		return limit + sp
	}
	return j
}

// render writes the window w of text as HTML, marking the spans that lie
// wholly inside it.
func render(text string, w span, spans []span) string {
	var b strings.Builder
	if w.start > 0 {
		b.WriteString(ellipsis)
	}
	pos := w.start
	for _, s := range spans {
		if s.start < pos || s.end > w.end {
			continue
		}
		b.WriteString(html.EscapeString(text[pos:s.start]))
		b.WriteString("<mark>")
		b.WriteString(html.EscapeString(text[s.start:s.end]))
		b.WriteString("</mark>")
		pos = s.end
	}
	b.WriteString(html.EscapeString(text[pos:w.end]))
	if w.end < len(text) {
		b.WriteString(ellipsis)
	}
	return b.String()
}
