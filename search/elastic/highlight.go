package elastic

import "github.com/parleychat/parley/search/snippet"

// Elasticsearch marks every match in the whole text (HTML-encoded, so the
// tags are unambiguous); the snippets are cut by package snippet, the same
// way as the embedded index's.

// highlights returns the snippets of text given Elasticsearch's
// highlighted versions of it: none when there is none, or when it is not
// the text with marks (then the marks' positions are unknown).
func highlights(text string, marked []string) []string {
	for _, m := range marked {
		plain, spans, ok := snippet.ParseMarked(m)
		if ok && plain == text {
			return snippet.HTML(text, spans)
		}
	}
	return []string{}
}
