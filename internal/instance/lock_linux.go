//go:build linux

package instance

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is this process's hold on the network namespace.
type Lock struct {
	ln   *net.UnixListener
	what string
	wg   sync.WaitGroup
	once sync.Once
}

// Acquire takes the network namespace of the calling thread for this
// process, saying it runs what (e.g. "bootstrap"); want says what it is
// about to do, for the message when another meshexp holds it (a
// *HeldError). The lock is released by Release or by the process's death.
// The listening socket is close-on-exec: no child can inherit it.
func Acquire(ctx context.Context, what, want string) (*Lock, error) {
	addr := &net.UnixAddr{Name: "@" + Name, Net: "unix"}
	for attempt := 0; ; attempt++ {
		ln, err := net.ListenUnix("unix", addr)
		if err == nil {
			ln.SetUnlinkOnClose(false)
			l := &Lock{ln: ln, what: what}
			l.wg.Add(1)
			go l.serve()
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("taking the one-instance lock (abstract socket @%s): %w", Name, err)
		}
		held, err := ask(ctx, addr)
		if err == nil {
			held.Want = want
			return nil, held
		}
		// The holder went away between our bind and connect: try again.
		if attempt >= 20 || ctx.Err() != nil {
			return nil, fmt.Errorf("taking the one-instance lock (abstract socket @%s): in use, but its holder does not answer: %w", Name, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ask connects to the holder and reads its pid (from the kernel) and what
// it runs (from the holder, best effort).
func ask(ctx context.Context, addr *net.UnixAddr) (*HeldError, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr.Name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	held := &HeldError{}
	if raw, err := c.(*net.UnixConn).SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				held.PID = int(cred.Pid)
			}
		})
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		held.What = strings.TrimSpace(line)
	}
	return held, nil
}

// serve tells whoever connects what this process runs.
func (l *Lock) serve() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(l.what + "\n"))
		c.Close()
	}
}

// Release frees the network namespace for the next meshexp.
func (l *Lock) Release() {
	l.once.Do(func() {
		l.ln.Close()
		l.wg.Wait()
	})
}
