// Package snippet cuts the highlights of a search hit: HTML snippets of a
// message's text with the matched words marked. Both Index adapters (Bleve
// and Elasticsearch) find the matches their own way and hand the byte
// ranges here, so the two answer the same snippets for the same matches.
//
// The rules, which chat/chattest.TestIndex pins on every adapter:
//   - every character of the text is HTML-escaped (html.EscapeString) and
//     each match is wrapped in <mark>…</mark>; adjacent matches stay
//     separate marks, overlapping ones are merged;
//   - a text of at most WholeRunes characters is one snippet, all of it;
//   - a longer text gives up to MaxSnippets snippets around its first
//     matches, ContextRunes of text on each side cut at a word where one
//     ends nearby, never cutting a match, with Ellipsis where text was cut;
//   - a snippet as rendered (tags and entities included) is at most
//     MaxRunes characters, even for a text that is nothing but matches: it
//     ends early, with Ellipsis, before a mark or an entity it cannot hold.
package snippet

import (
	"html"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The snippet rules.
const (
	// MarkOpen and MarkClose wrap each match.
	MarkOpen  = "<mark>"
	MarkClose = "</mark>"
	// WholeRunes is the longest text shown whole rather than in snippets.
	WholeRunes = 160
	// ContextRunes is how much text a snippet keeps on each side of a match.
	ContextRunes = 60
	// MaxSnippets bounds the snippets of one text.
	MaxSnippets = 3
	// MaxRunes bounds a snippet as rendered.
	MaxRunes = 1000
	// Ellipsis stands where text was cut.
	Ellipsis = "…"
)

// Span is a byte range [Start, End) of a text: one match.
type Span struct{ Start, End int }

// HTML returns the snippets of text with spans marked. Spans that are not
// inside text on rune boundaries are ignored; no valid span gives no
// snippet (an empty, non-nil list).
func HTML(text string, spans []Span) []string {
	spans = clean(text, spans)
	if len(spans) == 0 {
		return []string{}
	}
	if utf8.RuneCountInString(text) <= WholeRunes {
		return []string{render(text, Span{0, len(text)}, spans)}
	}
	var out []string
	end := 0 // where the previous window ended
	for i := 0; i < len(spans) && len(out) < MaxSnippets; {
		first := spans[i]
		w := Span{Start: max(wordStart(text, first.Start, ContextRunes), end), End: wordEnd(text, first.End, ContextRunes)}
		// A match the window would cut ends it just before.
		for _, s := range spans[i+1:] {
			if s.Start >= w.End {
				break
			}
			if s.End > w.End {
				w.End = s.Start
				break
			}
		}
		out = append(out, render(text, w, spans))
		end = w.End
		for i < len(spans) && spans[i].End <= w.End {
			i++
		}
	}
	return out
}

// clean returns the spans that lie inside text on rune boundaries, sorted,
// with overlapping ones merged.
func clean(text string, spans []Span) []Span {
	boundary := func(i int) bool { return i == len(text) || utf8.RuneStart(text[i]) }
	out := make([]Span, 0, len(spans))
	for _, s := range spans {
		if s.Start >= 0 && s.Start < s.End && s.End <= len(text) && boundary(s.Start) && boundary(s.End) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Span) int { return a.Start - b.Start })
	merged := out[:0]
	for _, s := range out {
		if n := len(merged); n > 0 && s.Start < merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, s.End)
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
// wholly inside it, and stops (with an ellipsis) before MaxRunes.
func render(text string, w Span, spans []Span) string {
	var b strings.Builder
	runes := 0
	write := func(s string) {
		b.WriteString(s)
		runes += utf8.RuneCountInString(s)
	}
	budget := MaxRunes - utf8.RuneCountInString(Ellipsis)
	if w.Start > 0 {
		write(Ellipsis)
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
	pos := w.Start
	for _, s := range spans {
		if s.Start < pos || s.End > w.End {
			continue
		}
		if !plain(pos, s.Start) {
			write(Ellipsis)
			return b.String()
		}
		m := MarkOpen + html.EscapeString(text[s.Start:s.End]) + MarkClose
		if runes+utf8.RuneCountInString(m) > budget {
			write(Ellipsis)
			return b.String()
		}
		write(m)
		pos = s.End
	}
	if !plain(pos, w.End) {
		write(Ellipsis)
		return b.String()
	}
	if w.End < len(text) {
		write(Ellipsis)
	}
	return b.String()
}

// ParseMarked reads HTML in the form HTML writes (and Elasticsearch's html
// highlight encoder too): escaped text with matches between MarkOpen and
// MarkClose, no other tag. It returns the unescaped text and the byte
// ranges of the matches in it; ok is false for anything else.
func ParseMarked(h string) (text string, spans []Span, ok bool) {
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
		case !inside && strings.HasPrefix(h, MarkOpen):
			spans = append(spans, Span{Start: b.Len()})
			inside, h = true, h[len(MarkOpen):]
		case inside && strings.HasPrefix(h, MarkClose):
			spans[len(spans)-1].End = b.Len()
			inside, h = false, h[len(MarkClose):]
		default:
			return "", nil, false
		}
	}
	if inside {
		return "", nil, false
	}
	return b.String(), spans, true
}
