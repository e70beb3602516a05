package elastic

import (
	"fmt"
	"testing"
)

func TestHighlightsNeedTheWholeText(t *testing.T) {
	if got := highlights("a b", []string{"<mark>a</mark>"}); len(got) != 0 {
		t.Errorf("a highlight of part of the text gave %q, want none", got)
	}
	if got := highlights("a b", []string{"<b>a</b> b", "<mark>a</mark> b"}); fmt.Sprint(got) != "[<mark>a</mark> b]" {
		t.Errorf("got %q, want the second highlight", got)
	}
	if got := highlights("a b", nil); got == nil || len(got) != 0 {
		t.Errorf("no highlight gave %#v, want an empty list", got)
	}
}
