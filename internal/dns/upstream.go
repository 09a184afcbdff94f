package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

const (
	// idleConns is how many connected UDP sockets an upstream keeps for
	// reuse. Opening a socket per query costs three system calls and a
	// poller registration; dnsmasq also keeps its forwarding sockets.
	idleConns = 256
	// respBufSize bounds a UDP response from upstream. We advertise 1232
	// octets; a reply that fills the buffer is treated as truncated and
	// asked again over TCP.
	respBufSize = 4096
)

var errTruncatedRead = errors.New("response larger than the receive buffer")

// upstream is one DNS server we forward to, with its health.
type upstream struct {
	addr   netip.AddrPort
	name   string
	dialer net.Dialer
	free   chan *udpConn
	probeQ []byte // question of the health probe
	// maxUses is how many queries a socket carries before it is replaced
	// by one on a fresh ephemeral port (Options.UpstreamPortReuse).
	maxUses int

	healthy atomic.Bool
	fails   atomic.Int32
	probing atomic.Bool

	requests   atomic.Uint64
	errs       atomic.Uint64
	tcpRetries atomic.Uint64
}

type udpConn struct {
	c    *net.UDPConn
	buf  []byte
	uses int
}

func newUpstream(addr netip.AddrPort, d net.Dialer, probeQ []byte, maxUses int) *upstream {
	u := &upstream{addr: addr, name: addr.String(), dialer: d, free: make(chan *udpConn, idleConns), probeQ: probeQ, maxUses: maxUses}
	u.healthy.Store(true)
	return u
}

func (u *upstream) getConn(ctx context.Context) (*udpConn, error) {
	select {
	case c := <-u.free:
		return c, nil
	default:
	}
	c, err := u.dialer.DialContext(ctx, "udp", u.name)
	if err != nil {
		return nil, fmt.Errorf("open a UDP socket to %s: %w", u.name, err)
	}
	return &udpConn{c: c.(*net.UDPConn), buf: make([]byte, respBufSize)}, nil
}

// putConn keeps c for the next query unless it failed (a late reply could
// still arrive on it) or has carried its share of queries.
func (u *upstream) putConn(c *udpConn, ok bool) {
	c.uses++
	if ok && c.uses < u.maxUses {
		select {
		case u.free <- c:
			return
		default:
		}
	}
	c.c.Close()
}

// closeIdle closes the kept sockets; queries still in flight close theirs.
func (u *upstream) closeIdle() {
	for {
		select {
		case c := <-u.free:
			c.c.Close()
		default:
			return
		}
	}
}

// exchangeUDP sends msg (whose ID is id and question is question) and
// returns the first reply that matches them, ignoring stray datagrams.
func (u *upstream) exchangeUDP(ctx context.Context, msg []byte, id uint16, question []byte, deadline time.Time) (*answer, error) {
	c, err := u.getConn(ctx)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() { u.putConn(c, ok) }()
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if _, err := c.c.Write(msg); err != nil {
		return nil, fmt.Errorf("send to %s: %w", u.name, err)
	}
	for {
		n, err := c.c.Read(c.buf)
		if err != nil {
			return nil, fmt.Errorf("read from %s: %w", u.name, err)
		}
		if n == len(c.buf) {
			ok = true
			return nil, errTruncatedRead
		}
		a, err := parseAnswer(c.buf[:n], id, question)
		if errors.Is(err, errMismatch) {
			continue // a late answer to an earlier query, or a forgery
		}
		if err != nil {
			return nil, fmt.Errorf("response from %s: %w", u.name, err)
		}
		ok = true
		return a, nil
	}
}

// exchangeTCP asks over a new TCP connection (RFC 7766 framing), for
// answers that did not fit in UDP.
func (u *upstream) exchangeTCP(ctx context.Context, msg []byte, id uint16, question []byte, deadline time.Time) (*answer, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	c, err := u.dialer.DialContext(ctx, "tcp", u.name)
	if err != nil {
		return nil, fmt.Errorf("connect over TCP to %s: %w", u.name, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	framed := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	if _, err := c.Write(append(framed, msg...)); err != nil {
		return nil, fmt.Errorf("send over TCP to %s: %w", u.name, err)
	}
	var l [2]byte
	for {
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return nil, fmt.Errorf("read over TCP from %s: %w", u.name, err)
		}
		buf := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, buf); err != nil {
			return nil, fmt.Errorf("read over TCP from %s: %w", u.name, err)
		}
		a, err := parseAnswer(buf, id, question)
		if errors.Is(err, errMismatch) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("response over TCP from %s: %w", u.name, err)
		}
		return a, nil
	}
}

// succeeded and failed keep the health record: maxFails failures in a row
// mark the upstream down and start a prober that marks it up again.
func (u *upstream) succeeded() { u.fails.Store(0) }

func (u *upstream) failed(s *Server) {
	u.errs.Add(1)
	if u.fails.Add(1) >= int32(s.opts.MaxFails) && u.healthy.Swap(false) {
		s.logger.Warn("dns upstream marked down", "upstream", u.name, "failures", u.fails.Load())
		s.startProbe(u)
	}
}

// probe asks the group's probe question until the upstream answers
// anything at all (an answer of any rcode proves it is serving), then marks
// it up.
func (u *upstream) probe(ctx context.Context, s *Server) {
	defer u.probing.Store(false)
	t := time.NewTicker(s.opts.ProbeInterval)
	defer t.Stop()
	q := &query{question: u.probeQ}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := s.newID()
		msg := appendUpstreamQuery(nil, id, q, q.question, s.opts.UDPSize)
		_, err := u.exchangeUDP(ctx, msg, id, q.question, time.Now().Add(s.opts.AttemptTimeout))
		if err == nil || errors.Is(err, errTruncatedRead) {
			u.fails.Store(0)
			u.healthy.Store(true)
			s.logger.Info("dns upstream marked up", "upstream", u.name)
			return
		}
		s.logger.Debug("dns upstream probe failed", "upstream", u.name, "err", err)
	}
}

// appendUpstreamQuery appends the query we send upstream for q: our own ID,
// the question in lower case (so coalesced askers share one answer), RD,
// q's CD, AD to learn the validation state (RFC 6840 §5.7), and EDNS with
// our buffer size and q's DO bit. Client EDNS options (cookies, client
// subnet) are hop-by-hop or private and are not passed on.
func appendUpstreamQuery(b []byte, id uint16, q *query, lowerQuestion []byte, udpSize uint16) []byte {
	flags := uint16(flagRD|flagAD) | q.flags&flagCD
	b = binary.BigEndian.AppendUint16(b, id)
	b = binary.BigEndian.AppendUint16(b, flags)
	b = append(b, 0, 1, 0, 0, 0, 0, 0, 1)
	b = append(b, lowerQuestion...)
	return appendOPT(b, udpSize, q.do, 0, edeNone)
}

// logValue makes upstream print as its address in logs.
func (u *upstream) LogValue() slog.Value { return slog.StringValue(u.name) }
