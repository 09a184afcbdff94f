package dns

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// The fuzz targets cover the request path: what a client sends (FuzzHandle)
// and what an upstream sends back (FuzzParseAnswer). CI runs the seeds;
// run one for longer with e.g.
//
//	go test ./internal/dns -run '^$' -fuzz FuzzHandle -fuzztime 30s

// seedQueries are well-formed and nearly well-formed requests.
func seedQueries(f *testing.F) [][]byte {
	var seeds [][]byte
	add := func(m *mdns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, name := range []string{"web.default.svc.cluster.local.", "WWW.Example.COM.", "big.example."} {
		m := new(mdns.Msg)
		m.SetQuestion(name, mdns.TypeA)
		add(m)
		m.SetEdns0(512, true)
		add(m)
		m.IsEdns0().SetVersion(1)
		add(m)
	}
	m := new(mdns.Msg)
	m.SetQuestion("example.", mdns.TypeAXFR)
	add(m)
	m = new(mdns.Msg)
	m.SetUpdate("example.")
	add(m)
	seeds = append(seeds, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1})
	seeds = append(seeds, []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 2, 0})
	return seeds
}

// fuzzServer is a Server without sockets whose cache holds answers for the
// seed names, one of them too big for plain UDP.
func fuzzServer(f *testing.F) *Server {
	o := DefaultOptions()
	s := &Server{opts: o, now: time.Now, cache: newCache(100, 1<<20, 0, time.Hour, time.Hour)}
	s.shared = new(stats)
	for _, name := range []string{"web.default.svc.cluster.local.", "www.example.com.", "big.example."} {
		for _, do := range []bool{false, true} {
			q := new(mdns.Msg)
			q.SetQuestion(name, mdns.TypeA)
			if do {
				q.SetEdns0(1232, true)
			}
			r := new(mdns.Msg)
			r.SetReply(q)
			n := 1
			if name == "big.example." {
				n = 60
			}
			for i := range n {
				a, _ := mdns.NewRR(name + " 60 IN A 192.0.2.1")
				a.(*mdns.A).A[3] = byte(i)
				r.Answer = append(r.Answer, a)
			}
			qb, _ := q.Pack()
			rb, _ := r.Pack()
			var pq query
			if _, err := parseQuery(qb, &pq); err != nil {
				f.Fatal(err)
			}
			key := appendKey(nil, &pq)
			ans, err := parseAnswer(rb, q.Id, key[:len(key)-1])
			if err != nil {
				f.Fatal(err)
			}
			s.cache.put(key, ans, time.Now().UnixNano())
		}
	}
	return s
}

func FuzzHandle(f *testing.F) {
	for _, s := range seedQueries(f) {
		f.Add(s, true)
		f.Add(s, false)
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, msg []byte, udp bool) {
		w := s.newWorker(s.shared)
		in := append([]byte(nil), msg...)
		resp, p := w.handle(msg, udp, time.Now())
		if !bytes.Equal(in, msg) {
			t.Fatal("handle modified the request")
		}
		if p != nil {
			if resp != nil {
				t.Fatal("both a response and a forward")
			}
			if len(p.key) < 6 || !bytes.Equal(p.q.question, msg[headerLen:headerLen+len(p.q.question)]) {
				t.Fatalf("pending question %x not taken from the request", p.q.question)
			}
			// What a forward would answer when every upstream fails.
			resp = appendError(nil, &p.q, rcodeServFail, edeNoReachableAuthority, s.opts.UDPSize)
		}
		if resp == nil {
			return
		}
		checkResponse(t, msg, resp, udp)
	})
}

// checkResponse holds every response to the rules a client relies on.
func checkResponse(t *testing.T, req, resp []byte, udp bool) {
	t.Helper()
	if len(resp) < headerLen || !bytes.Equal(resp[:2], req[:2]) {
		t.Fatalf("response %x does not echo the ID of %x", resp, req)
	}
	if resp[2]&0x80 == 0 {
		t.Fatal("QR not set")
	}
	if udp && len(resp) > udpLimit(req) {
		t.Fatalf("UDP response of %d octets exceeds what the client takes", len(resp))
	}
	var m mdns.Msg
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("response does not unpack: %v\n%x", err, resp)
	}
	if qd := binary.BigEndian.Uint16(resp[4:]); qd == 1 {
		var q query
		if rc, _ := parseQuery(req, &q); rc >= 0 && q.question != nil &&
			!bytes.Equal(resp[headerLen:headerLen+len(q.question)], q.question) {
			t.Fatal("question not echoed exactly")
		}
	}
}

// udpLimit is the largest UDP response for req: the EDNS size it
// advertises, bounded by our 1232, never under 512.
func udpLimit(req []byte) int {
	var q query
	parseQuery(req, &q)
	return q.sizeLimit(true, defaultUDPSize)
}

func FuzzParseAnswer(f *testing.F) {
	q := new(mdns.Msg)
	q.SetQuestion("www.example.com.", mdns.TypeA)
	q.Id = 77
	qb, _ := q.Pack()
	question := qb[headerLen:]
	add := func(r *mdns.Msg) {
		b, err := r.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	r := new(mdns.Msg)
	r.SetReply(q)
	r.Answer = append(r.Answer, rr2(f, "www.example.com. 60 IN A 192.0.2.1"), rr2(f, "www.example.com. 30 IN A 192.0.2.2"))
	add(r)
	r.SetEdns0(4096, true)
	add(r)
	r.Extra = append(r.Extra, rr2(f, "x.example. 1 IN A 192.0.2.3"))
	add(r)
	nx := new(mdns.Msg)
	nx.SetRcode(q, mdns.RcodeNameError)
	nx.Ns = append(nx.Ns, rr2(f, "example.com. 300 IN SOA ns.example.com. h.example.com. 1 2 3 4 60"))
	add(nx)
	tc := new(mdns.Msg)
	tc.SetReply(q)
	tc.Truncated = true
	add(tc)

	f.Fuzz(func(t *testing.T, resp []byte) {
		a, err := parseAnswer(resp, 77, question)
		if err != nil {
			return
		}
		if len(a.ttlOff) != len(a.ttls) {
			t.Fatal("TTL offsets and values differ in number")
		}
		for _, off := range a.ttlOff {
			if int(off)+4 > len(a.wire) {
				t.Fatalf("TTL offset %d beyond the %d-octet message", off, len(a.wire))
			}
		}
		if a.cacheable {
			for _, ttl := range a.ttls {
				if a.ttl > ttl {
					t.Fatalf("answer kept for %ds, longer than a record's TTL %d", a.ttl, ttl)
				}
			}
		}
		for _, client := range [][]byte{qb, ednsQuery(t, q)} {
			var cq query
			if _, err := parseQuery(client, &cq); err != nil {
				t.Fatal(err)
			}
			for _, limit := range []int{512, 1232, maxMsgSize} {
				out := appendAnswer(nil, &cq, a, 5, 100, limit, 1232)
				if len(out) > limit && len(out) > headerLen+len(cq.question)+11 {
					t.Fatalf("answer of %d octets over the limit %d", len(out), limit)
				}
				walk(t, out)
			}
		}
	})
}

func ednsQuery(t *testing.T, q *mdns.Msg) []byte {
	c := q.Copy()
	c.SetEdns0(1232, true)
	b, err := c.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walk checks that msg's header counts match the records it holds.
func walk(t *testing.T, msg []byte) {
	t.Helper()
	off, err := skipName(msg, headerLen, false)
	if err != nil {
		t.Fatalf("question: %v", err)
	}
	off += 4
	n := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	for i := range n {
		if off, err = skipRR(msg, off); err != nil {
			t.Fatalf("record %d of %d: %v", i+1, n, err)
		}
	}
	if off != len(msg) {
		t.Fatalf("%d octets after the last record", len(msg)-off)
	}
}

func rr2(f *testing.F, s string) mdns.RR {
	r, err := mdns.NewRR(s)
	if err != nil {
		f.Fatal(err)
	}
	return r
}
