package dns

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"
)

// group is a set of upstreams that serve the same zones: the cluster DNS
// servers, or the general upstreams.
type group struct {
	name  string
	ups   []*upstream
	probe []byte // question that proves an upstream of this group is serving
	rr    atomic.Uint32
}

// order lists the group's upstreams for one query: the healthy ones first,
// starting from a rotating position to spread load, then the ones marked
// down, which are still worth a try when nothing else answers.
func (g *group) order(dst []*upstream) []*upstream {
	n := len(g.ups)
	start := int(g.rr.Add(1) % uint32(n))
	for i := range n {
		if u := g.ups[(start+i)%n]; u.healthy.Load() {
			dst = append(dst, u)
		}
	}
	for i := range n {
		if u := g.ups[(start+i)%n]; !u.healthy.Load() {
			dst = append(dst, u)
		}
	}
	return dst
}

// zoneRoute sends names at or under zone (lower-case wire form) to g.
type zoneRoute struct {
	zone string
	wire []byte
	g    *group
}

// route picks the group for a lower-case wire-form name: the longest zone
// that contains it, else the general upstreams.
func (s *Server) route(name []byte) *group {
	for i := range s.zones {
		if hasZoneSuffix(name, s.zones[i].wire) {
			return s.zones[i].g
		}
	}
	return s.upstreams
}

// hasZoneSuffix reports whether name equals zone or lies under it, at a
// label boundary (so "xsvc.cluster.local." is not under "svc.cluster.local.").
func hasZoneSuffix(name, zone []byte) bool {
	for off := 0; off < len(name); off += int(name[off]) + 1 {
		switch rest := len(name) - off; {
		case rest == len(zone):
			return bytes.Equal(name[off:], zone)
		case rest < len(zone):
			return false
		}
	}
	return false
}

var errNoUpstream = errors.New("no upstream answered")

// forward asks q's group until one upstream gives a usable answer or the
// per-query deadline passes. Each attempt has its own shorter deadline so a
// silent upstream does not use up the query's time; a truncated answer is
// asked again over TCP from the same upstream. SERVFAIL and REFUSED move on
// to the next upstream and are returned only when no one does better.
func (s *Server) forward(ctx context.Context, q *query, lowerQuestion []byte) (*answer, error) {
	g := s.route(lowerQuestion[:len(lowerQuestion)-4])
	var orderBuf [8]*upstream
	order := g.order(orderBuf[:0])
	deadline := time.Now().Add(s.opts.Timeout)
	var (
		last    *answer
		lastErr error = errNoUpstream
		msgBuf  [512]byte
	)
	for {
		timedOut := false
		for _, u := range order {
			now := time.Now()
			if !now.Before(deadline) {
				return last, lastErrUnless(last, lastErr)
			}
			attempt := now.Add(s.opts.AttemptTimeout)
			if attempt.After(deadline) {
				attempt = deadline
			}
			id := s.newID()
			msg := appendUpstreamQuery(msgBuf[:0], id, q, lowerQuestion, s.opts.UDPSize)
			u.requests.Add(1)
			a, err := u.exchangeUDP(ctx, msg, id, lowerQuestion, attempt)
			if (err == nil && a.truncated) || errors.Is(err, errTruncatedRead) {
				u.tcpRetries.Add(1)
				a, err = u.exchangeTCP(ctx, msg, id, lowerQuestion, deadline)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s.logger.Debug("dns upstream failed", "upstream", u.name, "err", err)
				u.failed(s)
				lastErr = err
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					timedOut = true
				}
				continue
			}
			u.succeeded()
			if a.rcode == rcodeServFail || a.rcode == rcodeRefused {
				last = a
				continue
			}
			return a, nil
		}
		// Go round again only when every failure was a timeout (a lost
		// datagram deserves a resend); refusals and error answers will not
		// change within the deadline.
		if last != nil || !timedOut {
			return last, lastErrUnless(last, lastErr)
		}
	}
}

func lastErrUnless(a *answer, err error) error {
	if a != nil {
		return nil
	}
	return err
}
