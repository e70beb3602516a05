package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestRunReportsValidAndInvalidHistories(t *testing.T) {
	valid := `{"kind":"watch","receiver":"bob","conversation_id":"c1"}
{"kind":"op","process":"a","phase":"invoke","f":"send","conversation_id":"c1","client_id":"k1"}
{"kind":"op","process":"a","phase":"ok","f":"send","conversation_id":"c1","client_id":"k1","message_id":"m1","seq":1}
{"kind":"event","receiver":"bob","transport":"ws","conversation_id":"c1","seq":1,"type":"message.created","message_id":"m1"}
`
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-history", "-"}, strings.NewReader(valid), &out); err != nil {
		t.Fatalf("valid history: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "valid: every count is 0") {
		t.Errorf("output %q does not say valid", out.String())
	}
	lost := strings.Replace(valid, `"seq":1,"type"`, `"seq":2,"type"`, 1)
	out.Reset()
	err := run(t.Context(), []string{"-history", "-", "-json"}, strings.NewReader(lost), &out)
	if !errors.Is(err, errInvalid) {
		t.Fatalf("a history with a lost message: %v, want errInvalid", err)
	}
	if !strings.Contains(out.String(), `"class": "lost"`) || !strings.Contains(out.String(), "never delivered to bob") {
		t.Errorf("JSON report %s does not name the loss", out.String())
	}
	if err := run(t.Context(), nil, strings.NewReader(""), &out); err == nil {
		t.Error("no -history: no error")
	}
}
