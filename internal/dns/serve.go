package dns

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// worker holds one serving goroutine's scratch buffers and counters, so the
// cache-hit path allocates nothing and shares no written memory.
type worker struct {
	s   *Server
	st  *stats
	key []byte
	out []byte
}

func (s *Server) newWorker(st *stats) *worker {
	return &worker{s: s, st: st, key: make([]byte, 0, 300), out: make([]byte, 0, 4096)}
}

// pending is a request that missed the cache, copied off the read buffer.
type pending struct {
	q     query
	key   []byte
	udp   bool
	start time.Time
}

// handle answers msg from the cache, or with an error rcode when it is not
// a query to forward; otherwise it returns the request to forward. A nil
// response and nil pending means drop msg without an answer.
func (w *worker) handle(msg []byte, udp bool, start time.Time) ([]byte, *pending) {
	s := w.s
	var q query
	rcode, _ := parseQuery(msg, &q)
	switch {
	case rcode < 0:
		return nil, nil
	case rcode != rcodeSuccess:
		return appendError(w.out[:0], &q, rcode, edeNone, s.opts.UDPSize), nil
	case q.qtype == typeAXFR || q.qtype == typeIXFR:
		// Zone transfers are between authoritative servers, not via us.
		return appendError(w.out[:0], &q, rcodeRefused, edeNone, s.opts.UDPSize), nil
	}
	w.key = appendKey(w.key[:0], &q)
	if s.cache != nil {
		now := start
		if s.opts.Now != nil {
			now = s.opts.Now()
		}
		if a, age, rem, ok := s.cache.get(w.key, now.UnixNano()); ok {
			w.st.hits.Add(1)
			return appendAnswer(w.out[:0], &q, a, age, rem, q.sizeLimit(udp, s.opts.UDPSize), s.opts.UDPSize), nil
		}
	}
	w.st.misses.Add(1)
	p := &pending{q: q, key: append([]byte(nil), w.key...), udp: udp, start: start}
	p.q.question = append([]byte(nil), q.question...)
	return nil, p
}

// acquire reserves a slot for a forwarded query, or reports overload.
func (s *Server) acquire() bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		s.overload.Add(1)
		return false
	}
}

func (s *Server) release() { <-s.sem }

// overloaded answers p at once with SERVFAIL when no slot is free.
func (s *Server) overloaded(p *pending) []byte {
	return appendError(nil, &p.q, rcodeServFail, edeNone, s.opts.UDPSize)
}

// resolve answers p through the upstreams, sharing the trip with identical
// requests in flight, and caches the answer.
func (s *Server) resolve(p *pending) []byte {
	a, err, _ := s.flight.do(p.key, func() (*answer, error) {
		a, err := s.forward(s.baseCtx, &p.q, p.key[:len(p.key)-1])
		if err == nil && s.cache != nil {
			s.cache.put(p.key, a, s.now().UnixNano())
		}
		return a, err
	})
	if err != nil {
		s.logger.Debug("dns query failed", "question", p.key[:len(p.key)-1], "err", err)
		return appendError(nil, &p.q, rcodeServFail, edeNoReachableAuthority, s.opts.UDPSize)
	}
	remaining := uint32(math.MaxUint32)
	if s.cache != nil {
		if t := s.cache.ttl(a); t > 0 {
			remaining = t
		}
	}
	return appendAnswer(nil, &p.q, a, 0, remaining, p.q.sizeLimit(p.udp, s.opts.UDPSize), s.opts.UDPSize)
}

// serveUDP reads requests from pc until it is closed. Cache hits are
// answered on this goroutine; misses get one of their own.
func (s *Server) serveUDP(pc net.PacketConn, w *worker) error {
	r := newUDPReplier(pc, s)
	buf := make([]byte, maxMsgSize)
	errs := 0
	for {
		n, err := r.read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Transient errors (ICMP reports, buffer pressure) are skipped;
			// a socket that only fails is reported.
			if errs++; errs > 100 {
				return err
			}
			s.logger.Debug("dns udp read failed", "err", err)
			continue
		}
		errs = 0
		start := time.Now()
		w.st.udp.Add(1)
		resp, p := w.handle(buf[:n], true, start)
		if p == nil {
			if resp != nil {
				r.reply(resp)
				w.st.observe(resp, time.Since(start))
			}
			continue
		}
		if !s.acquire() {
			resp := s.overloaded(p)
			r.reply(resp)
			w.st.observe(resp, time.Since(start))
			continue
		}
		reply := r.later()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.release()
			resp := s.resolve(p)
			reply(resp)
			s.shared.observe(resp, time.Since(p.start))
		}()
	}
}

// udpReplier reads datagrams and answers the last one's sender, from the
// address it was sent to when the socket is bound to a wildcard address.
type udpReplier struct {
	pc   net.PacketConn
	uc   *net.UDPConn // nil for other PacketConns
	oob  []byte       // non-nil when replies need a source address
	src  []byte       // control message naming the reply's source
	ap   netip.AddrPort
	addr net.Addr
}

func newUDPReplier(pc net.PacketConn, s *Server) *udpReplier {
	r := &udpReplier{pc: pc}
	r.uc, _ = pc.(*net.UDPConn)
	if r.uc != nil && r.uc.LocalAddr().(*net.UDPAddr).IP.IsUnspecified() {
		if err := enablePktInfo(r.uc); err != nil {
			s.logger.Warn("dns: replies on a wildcard address may come from another address of this host", "err", err)
		} else {
			r.oob = make([]byte, oobSize)
		}
	}
	return r
}

func (r *udpReplier) read(buf []byte) (int, error) {
	var (
		n, oobn int
		err     error
	)
	switch {
	case r.oob != nil:
		n, oobn, _, r.ap, err = r.uc.ReadMsgUDPAddrPort(buf, r.oob)
		r.src = nil
		if dst, ok := pktInfoDst(r.oob[:oobn]); ok && err == nil {
			r.src = pktInfoSrc(dst)
		}
	case r.uc != nil:
		n, r.ap, err = r.uc.ReadFromUDPAddrPort(buf)
	default:
		n, r.addr, err = r.pc.ReadFrom(buf)
	}
	return n, err
}

func (r *udpReplier) reply(b []byte) {
	switch {
	case r.src != nil:
		r.uc.WriteMsgUDPAddrPort(b, r.src, r.ap)
	case r.uc != nil:
		r.uc.WriteToUDPAddrPort(b, r.ap)
	default:
		r.pc.WriteTo(b, r.addr)
	}
}

// later returns a function that answers the current datagram's sender
// after the replier has moved on to other datagrams.
func (r *udpReplier) later() func([]byte) {
	saved := *r
	return saved.reply
}

// maxTCPConns bounds client TCP connections; more are closed on accept.
const maxTCPConns = 256

func (s *Server) serveTCP(ln net.Listener) error {
	backoff := 5 * time.Millisecond
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of descriptors and the like: wait a little, as
			// net/http's Server does.
			s.logger.Debug("dns tcp accept failed", "err", err)
			select {
			case <-time.After(backoff):
			case <-s.baseCtx.Done():
				return nil
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.connsMu.Lock()
		if len(s.conns) >= maxTCPConns || s.baseCtx.Err() != nil {
			s.connsMu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.connsMu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// serveConn answers the requests of one TCP connection (RFC 7766): each
// message is length-prefixed, several may be pipelined, and answers to
// forwarded ones may come back out of order.
func (s *Server) serveConn(c net.Conn) {
	var (
		wmu      sync.Mutex
		inflight sync.WaitGroup
	)
	defer func() {
		inflight.Wait()
		c.Close()
		s.connsMu.Lock()
		delete(s.conns, c)
		s.connsMu.Unlock()
	}()
	reply := func(resp []byte) bool {
		wmu.Lock()
		defer wmu.Unlock()
		c.SetWriteDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		b := net.Buffers{binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp}
		_, err := b.WriteTo(c)
		return err == nil
	}
	w := s.newWorker(s.shared)
	var l [2]byte
	msg := make([]byte, 512)
	for {
		c.SetReadDeadline(time.Now().Add(s.opts.TCPIdleTimeout))
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(l[:]))
		if n > cap(msg) {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		start := time.Now()
		s.shared.tcp.Add(1)
		resp, p := w.handle(msg, false, start)
		if p == nil {
			if resp == nil || !reply(resp) {
				return
			}
			s.shared.observe(resp, time.Since(start))
			continue
		}
		if !s.acquire() {
			resp := s.overloaded(p)
			if !reply(resp) {
				return
			}
			s.shared.observe(resp, time.Since(start))
			continue
		}
		inflight.Add(1)
		go func() {
			defer inflight.Done()
			defer s.release()
			resp := s.resolve(p)
			if reply(resp) {
				s.shared.observe(resp, time.Since(p.start))
			}
		}()
	}
}
