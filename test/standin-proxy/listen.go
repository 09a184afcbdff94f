package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// detectWindow is how long the stand-in waits for a client's first bytes
// before answering as a server-first protocol. It plays the part of the
// proxy's protocol detection, but short: nothing waits on it but clients
// that never speak first.
const detectWindow = 250 * time.Millisecond

// listen binds like the proxy's std::net::TcpListener::bind: an IPv4
// address takes IPv4 only; the IPv6 wildcard "[::]" is a dual-stack socket
// (Linux's default, net.ipv6.bindv6only=0), so it also takes IPv4 clients,
// which then appear IPv4-mapped; any other IPv6 address takes IPv6 only.
func listen(ctx context.Context, ap netip.AddrPort) (net.Listener, error) {
	network := "tcp6"
	switch {
	case ap.Addr().Is4():
		network = "tcp4"
	case ap.Addr().IsUnspecified():
		network = "tcp"
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, network, ap.String())
}

// connStats counts connections per listener for /metrics.
type connStats struct {
	opened atomic.Int64
	closed atomic.Int64
}

// connServer answers every connection accepted on one listener with the
// connection's original destination.
type connServer struct {
	direction string // inbound, outbound or control
	ln        net.Listener
	log       *slog.Logger
	ident     *identityWatcher
	stats     *connStats

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	closing bool
	wg      sync.WaitGroup
}

func newConnServer(direction string, ln net.Listener, log *slog.Logger, ident *identityWatcher, stats *connStats) *connServer {
	return &connServer{direction: direction, ln: ln, log: log, ident: ident, stats: stats, conns: map[net.Conn]struct{}{}}
}

// serve accepts until the listener is closed.
func (s *connServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("Failed to accept connection", "listener", s.direction, "error", err.Error())
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: do not spin
			continue
		}
		if !s.track(c) {
			c.Close()
			return
		}
		s.stats.opened.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(c)
			s.handle(c)
		}()
	}
}

// track registers a connection and its handler; under the same lock as
// drain's closing flag, so drain's Wait never races an Add.
func (s *connServer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *connServer) untrack(c net.Conn) {
	c.Close()
	s.stats.closed.Add(1)
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// setReadDeadline sets a read deadline unless the server is draining, in
// which case reads end at once.
func (s *connServer) setReadDeadline(c net.Conn, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		t = time.Unix(1, 0)
	}
	c.SetReadDeadline(t)
}

// drain stops accepting, ends idle reads, and waits for handlers until
// ctx ends; then it closes what is left.
func (s *connServer) drain(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	s.ln.Close()
	for c := range s.conns {
		c.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
	}
}

// answer is the one line the stand-in says about a connection.
func (s *connServer) answer(c net.Conn) string {
	local := addrPortOf(c.LocalAddr())
	peer := addrPortOf(c.RemoteAddr())
	dst := local
	if tc, ok := c.(*net.TCPConn); ok {
		if od, err := originalDst(tc); err == nil {
			dst = od
		} else {
			// A connection that reached the listener directly (no NAT) has no
			// original destination to read: report where it arrived.
			s.log.Debug("No original destination; using the local address", "listener", s.direction, "error", err.Error())
		}
	}
	id := "none"
	if cr := s.ident.Current(); cr != nil {
		id = cr.id
	}
	line := fmt.Sprintf("meshexp-standin %s orig_dst=%s peer=%s identity=%s\n",
		s.direction, unmap(dst), unmap(peer), id)
	s.log.Debug("Connection", "listener", s.direction, "orig_dst", unmap(dst).String(), "peer", unmap(peer).String())
	return line
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.AddrPort()
	}
	return netip.AddrPort{}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *connServer) handle(c net.Conn) {
	line := s.answer(c)
	buf := make([]byte, 4096)
	s.setReadDeadline(c, time.Now().Add(detectWindow))
	n, err := c.Read(buf)
	first := buf[:n]
	if n > 0 && looksLikeHTTP(first) {
		s.serveHTTP(c, bufio.NewReader(io.MultiReader(bytes.NewReader(first), c)), line)
		return
	}
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		return // the client went away before saying anything
	}
	// Server-first or not HTTP: say the line, then let the client finish.
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, line); err != nil {
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	// Read what the client still sends so closing does not reset the
	// connection before it has read the line.
	s.setReadDeadline(c, time.Now().Add(5*time.Second))
	io.Copy(io.Discard, c)
}

var httpMethods = [][]byte{
	[]byte("GET "), []byte("HEAD "), []byte("POST "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT "), []byte("TRACE "),
}

// looksLikeHTTP is the stand-in's protocol detection: an HTTP/1 request
// line starts with a method and a space. A client that sent fewer bytes
// than a method name in its first segment is treated as not HTTP.
func looksLikeHTTP(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// serveHTTP answers HTTP/1.1 requests with 200 and the line as the body,
// keeping the connection alive as the client asks.
func (s *connServer) serveHTTP(c net.Conn, br *bufio.Reader, line string) {
	for {
		s.setReadDeadline(c, time.Now().Add(time.Minute))
		req, err := http.ReadRequest(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !isTimeout(err) {
				io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			}
			return
		}
		io.Copy(io.Discard, req.Body)
		req.Body.Close()
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		closeAfter := req.Close || closing
		var b bytes.Buffer
		b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n")
		b.WriteString("Content-Length: " + strconv.Itoa(len(line)) + "\r\n")
		b.WriteString("X-Meshexp-Standin: " + s.direction + "\r\n")
		if closeAfter {
			b.WriteString("Connection: close\r\n")
		}
		b.WriteString("\r\n")
		if req.Method != http.MethodHead {
			b.WriteString(line)
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(b.Bytes()); err != nil || closeAfter {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
