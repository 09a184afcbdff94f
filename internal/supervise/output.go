package supervise

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

const (
	// maxLine is the longest line logged as one record; a longer line is
	// logged in pieces of this size, each marked partial=true.
	maxLine = 32 << 10
	// outputDrain is how long a run's output is still read once its
	// process group is gone. Only a descendant that left the group
	// (setsid) can still hold the pipe then; it must not keep the
	// supervising goroutine, or the next run, waiting.
	outputDrain = time.Second
)

// outputs are the descriptors one run gets (stdin, stdout, stderr) and
// the goroutines copying what it writes.
type outputs struct {
	files     []*os.File // fds 0, 1, 2 as the child gets them
	childEnds []*os.File // meshexp's copies of those it opened, closed after the fork
	pumps     []*pump
	wg        sync.WaitGroup
}

// pump copies one stream: line by line to the logger when w is nil,
// raw to w otherwise.
type pump struct {
	r      *os.File
	stream string
	w      io.Writer
	level  func(string) slog.Level
}

func openOutputs(spec Spec) (*outputs, error) {
	o := &outputs{}
	stdin, err := os.Open(os.DevNull)
	if err != nil {
		return nil, err
	}
	o.files = append(o.files, stdin)
	o.childEnds = append(o.childEnds, stdin)
	for _, s := range []struct {
		name string
		w    io.Writer
	}{{"stdout", spec.Stdout}, {"stderr", spec.Stderr}} {
		f, err := o.add(s.name, s.w, spec.LineLevel)
		if err != nil {
			o.closeChildEnds()
			o.abort()
			return nil, err
		}
		o.files = append(o.files, f)
	}
	return o, nil
}

func (o *outputs) add(stream string, w io.Writer, level func(string) slog.Level) (*os.File, error) {
	if f, ok := w.(*os.File); ok && f != nil {
		return f, nil // handed over as is; meshexp keeps its own
	}
	if w == io.Discard {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return nil, err
		}
		o.childEnds = append(o.childEnds, f)
		return f, nil
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	o.childEnds = append(o.childEnds, pw)
	o.pumps = append(o.pumps, &pump{r: r, stream: stream, w: w, level: level})
	return pw, nil
}

// closeChildEnds closes meshexp's copies of the child's descriptors, so
// that the pipes see EOF when the child's side is closed.
func (o *outputs) closeChildEnds() {
	for _, f := range o.childEnds {
		f.Close()
	}
	o.childEnds = nil
}

func (o *outputs) start(logger *slog.Logger, pid int) {
	for _, p := range o.pumps {
		o.wg.Add(1)
		go func() {
			defer o.wg.Done()
			p.run(logger, pid)
		}()
	}
}

// drain lets the pumps read what is left, for at most outputDrain, then
// ends them and closes the pipes.
func (o *outputs) drain() {
	deadline := time.Now().Add(outputDrain)
	for _, p := range o.pumps {
		if err := p.r.SetReadDeadline(deadline); err != nil {
			p.r.Close() // not pollable: closing is the only way to end the read
		}
	}
	o.wg.Wait()
	o.abort()
}

// abort closes the read ends.
func (o *outputs) abort() {
	for _, p := range o.pumps {
		p.r.Close()
	}
}

func (p *pump) run(logger *slog.Logger, pid int) {
	var err error
	if p.w != nil {
		_, err = io.Copy(p.w, p.r)
	} else {
		err = logLines(p.r, logger, p.stream, pid, p.level)
	}
	switch {
	case err == nil || errors.Is(err, os.ErrClosed):
	case errors.Is(err, os.ErrDeadlineExceeded):
		logger.Warn("a process that left the child's group still holds its output; no longer reading it", "stream", p.stream)
	default:
		logger.Warn("copying child output failed", "stream", p.stream, "err", err)
	}
}

// logLines logs each line read from r as one record whose message is the
// line, at the level levelOf gives it (Info when nil). A line longer than
// maxLine, and a last line without a newline, are logged as they come with
// partial=true. It returns nil at EOF.
func logLines(r io.Reader, logger *slog.Logger, stream string, pid int, levelOf func(string) slog.Level) error {
	br := bufio.NewReaderSize(r, maxLine)
	attrStream, attrPID := slog.String("stream", stream), slog.Int("pid", pid)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			partial := line[len(line)-1] != '\n'
			if !partial {
				line = line[:len(line)-1]
				if n := len(line); n > 0 && line[n-1] == '\r' {
					line = line[:n-1]
				}
			}
			msg, level := string(line), slog.LevelInfo
			if levelOf != nil {
				level = levelOf(msg)
			}
			if partial {
				logger.LogAttrs(context.Background(), level, msg, attrStream, attrPID, slog.Bool("partial", true))
			} else {
				logger.LogAttrs(context.Background(), level, msg, attrStream, attrPID)
			}
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}
