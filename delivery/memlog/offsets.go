package memlog

import (
	"bufio"
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parleychat/parley/chat"
)

// The mark file of a topic is a few lines of text:
//
//	parley memlog offsets v1
//	topic "commands"
//	reserved 3145728
//
// Every offset of every partition of the topic handed out so far is below
// the reserved mark. It is replaced atomically (write a temporary file,
// sync it, rename it over the old one, sync the folder), so a crash leaves
// either the old mark or the new one, and the old one is never used again
// once the new one is visible: offsets above the old mark are handed out
// only after the rename is synced.
const (
	markHeader = "parley memlog offsets v1"
	markSuffix = ".offsets"
)

// markFile returns the file name of topic's mark: the topic name, escaped
// so that any name is one harmless file name.
func markFile(topic string) (string, error) {
	if topic == "" {
		return "", chat.Errorf(chat.CodeInvalid, "memlog: empty topic name")
	}
	name := url.QueryEscape(topic) + markSuffix
	if len(name) > 200 {
		return "", chat.Errorf(chat.CodeInvalid, "memlog: topic name %.40q… is too long", topic)
	}
	return name, nil
}

// loadMarks reads every mark file in dir.
func loadMarks(dir string) (map[string]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("memlog: open: %w", err)
	}
	marks := map[string]int64{}
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), markSuffix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("memlog: open: %w", err)
		}
		topic, mark, err := parseMark(data)
		if err != nil {
			return nil, fmt.Errorf("memlog: open: %s: %w", filepath.Join(dir, e.Name()), err)
		}
		if want, _ := markFile(topic); want != e.Name() {
			return nil, fmt.Errorf("memlog: open: %s holds the mark of topic %q", filepath.Join(dir, e.Name()), topic)
		}
		marks[topic] = mark
	}
	return marks, nil
}

func formatMark(topic string, mark int64) []byte {
	return fmt.Appendf(nil, "%s\ntopic %s\nreserved %d\n", markHeader, strconv.Quote(topic), mark)
}

func parseMark(data []byte) (topic string, mark int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 3 || lines[0] != markHeader {
		return "", 0, fmt.Errorf("not a memlog offsets file")
	}
	q, ok := strings.CutPrefix(lines[1], "topic ")
	if !ok {
		return "", 0, fmt.Errorf("no topic line")
	}
	if topic, err = strconv.Unquote(q); err != nil {
		return "", 0, fmt.Errorf("bad topic line: %w", err)
	}
	m, ok := strings.CutPrefix(lines[2], "reserved ")
	if !ok {
		return "", 0, fmt.Errorf("no reserved line")
	}
	if mark, err = strconv.ParseInt(m, 10, 64); err != nil || mark < 0 {
		return "", 0, fmt.Errorf("bad reserved mark %q", m)
	}
	return topic, mark, nil
}

// writeMark durably replaces topic's mark file in dir.
func writeMark(dir, file, topic string, mark int64) error {
	final := filepath.Join(dir, file)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(formatMark(topic, mark)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
