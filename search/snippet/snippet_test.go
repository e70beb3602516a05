package snippet

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseMarked(t *testing.T) {
	for _, tc := range []struct {
		name, in, text string
		spans          []Span
		ok             bool
	}{
		{"plain", "no marks", "no marks", nil, true},
		{"marks", "a <mark>b</mark> c<mark>d</mark>", "a b cd", []Span{{2, 3}, {5, 6}}, true},
		{"entities count as the characters they stand for",
			"&lt;b&gt; &amp; <mark>x</mark> &#x27;&#x2F;&quot;", `<b> & x '/"`, []Span{{6, 7}}, true},
		{"literal tags in the text arrive escaped", "&lt;mark&gt;<mark>mark</mark>", "<mark>mark", []Span{{6, 10}}, true},
		{"multibyte", "<mark>Grüße</mark>!", "Grüße!", []Span{{0, 7}}, true},
		{"unclosed mark", "<mark>x", "", nil, false},
		{"close without open", "x</mark>", "", nil, false},
		{"nested", "<mark><mark>x</mark></mark>", "", nil, false},
		{"other tag", "<b>x</b>", "", nil, false},
		{"raw >", "a > b", "", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text, spans, ok := ParseMarked(tc.in)
			if ok != tc.ok || text != tc.text || fmt.Sprint(spans) != fmt.Sprint(tc.spans) {
				t.Errorf("ParseMarked(%q) = %q, %v, %v; want %q, %v, %v", tc.in, text, spans, ok, tc.text, tc.spans, tc.ok)
			}
		})
	}
}

func TestHTML(t *testing.T) {
	long := strings.Repeat("filler ", 100) + "needle " + strings.Repeat("tail ", 100)
	at := strings.Index(long, "needle")
	for _, tc := range []struct {
		name  string
		text  string
		spans []Span
		want  []string
	}{
		{"escapes everything but marks", `<a href="x">hi</a> & 'you'`, []Span{{12, 14}},
			[]string{`&lt;a href=&#34;x&#34;&gt;<mark>hi</mark>&lt;/a&gt; &amp; &#39;you&#39;`}},
		{"several matches, unordered and overlapping", "one two three", []Span{{8, 13}, {0, 3}, {1, 3}},
			[]string{"<mark>one</mark> two <mark>three</mark>"}},
		{"adjacent matches stay apart", "中中文", []Span{{0, 3}, {3, 6}},
			[]string{"<mark>中</mark><mark>中</mark>文"}},
		{"replacement character does not lose the snippet", "a � b word", []Span{{8, 12}},
			[]string{"a � b <mark>word</mark>"}},
		{"multibyte text", "grüße, Grüße!", []Span{{0, 7}, {9, 16}},
			[]string{"<mark>grüße</mark>, <mark>Grüße</mark>!"}},
		{"spans off rune boundaries or out of range are dropped", "ümlaut word", []Span{{1, 3}, {5, 99}, {3, 2}},
			[]string{}},
		{"no spans", "text", nil, []string{}},
		{"long text gives a snippet cut at words", long, []Span{{at, at + 6}},
			[]string{"…" + strings.Repeat("filler ", 8) + "<mark>needle</mark>" + strings.Repeat(" tail", 11) + "…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := HTML(tc.text, tc.spans); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("HTML\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

// TestSnippetsAreBounded: a text that is nothing but matches, or nothing
// but characters that escape long, still gives at most MaxSnippets
// snippets of at most MaxRunes, each with a mark, never cutting a mark or
// an entity.
func TestSnippetsAreBounded(t *testing.T) {
	every := func(text string, width int) []Span {
		var spans []Span
		for i := 0; i+width <= len(text); i += width {
			spans = append(spans, Span{i, i + width})
		}
		return spans
	}
	quotes := strings.Repeat(`"`, 3000) + " word " + strings.Repeat(`"`, 900)
	for name, tc := range map[string]struct {
		text  string
		spans []Span
	}{
		"ideographs, each a match": {strings.Repeat("中", 4000), every(strings.Repeat("中", 4000), len("中"))},
		"short text of matches":    {strings.Repeat("中", 150), every(strings.Repeat("中", 150), len("中"))},
		"words, each a match":      {strings.TrimSpace(strings.Repeat("word ", 800)), every(strings.Repeat("word ", 800), 5)},
		"quotes around a match":    {quotes, []Span{{3001, 3005}}},
		"short text of quotes":     {strings.Repeat(`"`, 150) + "x", []Span{{150, 151}}},
	} {
		t.Run(name, func(t *testing.T) {
			got := HTML(tc.text, tc.spans)
			if len(got) == 0 || len(got) > MaxSnippets {
				t.Fatalf("%d snippets", len(got))
			}
			for _, s := range got {
				if n := utf8.RuneCountInString(s); n > MaxRunes {
					t.Errorf("snippet of %d characters", n)
				}
				if !strings.Contains(s, MarkOpen) {
					t.Errorf("snippet without a mark: %.80q", s)
				}
				if strings.Count(s, MarkOpen) != strings.Count(s, MarkClose) {
					t.Errorf("snippet cuts a mark: %.80q", s)
				}
				if _, _, ok := ParseMarked(strings.TrimSuffix(strings.TrimPrefix(s, Ellipsis), Ellipsis)); !ok {
					t.Errorf("snippet is not well formed: %.80q", s)
				}
				if i := strings.LastIndexByte(s, '&'); i >= 0 && !strings.Contains(s[i:], ";") {
					t.Errorf("snippet cuts an entity: …%q", s[i:])
				}
				if strings.Contains(s, "<mark>wor</mark>") {
					t.Errorf("snippet cuts a match: %q", s)
				}
			}
		})
	}
}
