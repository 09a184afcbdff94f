//go:build linux

package supervise

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestOutputLinesAreLoggedWithTheChildsName(t *testing.T) {
	logs, logger := newLogStore(t)
	spec := helperSpec(t, "lines")
	spec.Name = "chatty"
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(c.PID())
	waitExited(t, c)

	lines := logs.find(func(r logRec) bool { return r.attrs["stream"] != "" })
	for _, r := range lines {
		if r.attrs["child"] != "chatty" || r.attrs["pid"] != pid {
			t.Errorf("line %.40q has child=%q pid=%q, want chatty and %s", r.msg, r.attrs["child"], r.attrs["pid"], pid)
		}
	}
	has := func(msg, stream, partial string) bool {
		for _, r := range lines {
			if r.msg == msg && r.attrs["stream"] == stream && r.attrs["partial"] == partial {
				return true
			}
		}
		return false
	}
	for _, want := range []struct{ msg, stream, partial string }{
		{"hello from stdout", "stdout", ""},
		{"hello from stderr", "stderr", ""},
		{"crlf line", "stdout", ""},
		{"no newline at the end", "stdout", "true"},
	} {
		if !has(want.msg, want.stream, want.partial) {
			t.Errorf("no %s line %q (partial=%q)", want.stream, want.msg, want.partial)
		}
	}
	// The 100000-byte line comes in pieces of maxLine, all but the last
	// marked partial, which add up to the line.
	var long strings.Builder
	var pieces, partials int
	for _, r := range lines {
		if strings.HasPrefix(r.msg, "xxxx") {
			long.WriteString(r.msg)
			pieces++
			if r.attrs["partial"] == "true" {
				partials++
			}
		}
	}
	if long.String() != strings.Repeat("x", 100000) {
		t.Errorf("the long line came back as %d bytes in %d pieces, want 100000 bytes", long.Len(), pieces)
	}
	if want := 100000 / maxLine; partials != want || pieces != want+1 {
		t.Errorf("the long line came in %d pieces (%d partial), want %d (%d partial)", pieces, partials, want+1, want)
	}
}

func TestOutputGoesToTheWriterGivenOrNowhere(t *testing.T) {
	logs, logger := newLogStore(t)
	var out lockedBuffer
	spec := helperSpec(t, "lines")
	spec.Stdout, spec.Stderr = &out, io.Discard
	c, err := Start(context.Background(), spec, logger)
	if err != nil {
		t.Fatal(err)
	}
	waitExited(t, c)
	got := out.String()
	if !strings.HasPrefix(got, "hello from stdout\n") || !strings.HasSuffix(got, "crlf line\r\nno newline at the end") {
		t.Errorf("stdout copied as %.60q…%q", got, got[max(0, len(got)-40):])
	}
	if lines := logs.find(func(r logRec) bool { return r.attrs["stream"] != "" }); len(lines) != 0 {
		t.Errorf("%d lines were logged, want none (stdout to a writer, stderr discarded): first %q", len(lines), lines[0].msg)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
