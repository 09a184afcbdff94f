package dns

import (
	"bytes"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestParseQuery(t *testing.T) {
	q := func(change func(m *mdns.Msg)) []byte {
		m := new(mdns.Msg)
		m.SetQuestion("www.Example.com.", mdns.TypeA)
		if change != nil {
			change(m)
		}
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name  string
		msg   []byte
		rcode int
		check func(t *testing.T, q *query)
	}{
		{"a plain query is forwarded", q(nil), rcodeSuccess, func(t *testing.T, q *query) {
			if q.edns || q.qtype != mdns.TypeA || q.qclass != mdns.ClassINET {
				t.Errorf("got %+v", q)
			}
		}},
		{"EDNS size and DO are read", q(func(m *mdns.Msg) { m.SetEdns0(4000, true) }), rcodeSuccess, func(t *testing.T, q *query) {
			if !q.edns || q.udpSize != 4000 || !q.do {
				t.Errorf("edns=%v size=%d do=%v", q.edns, q.udpSize, q.do)
			}
		}},
		{"a response is dropped", q(func(m *mdns.Msg) { m.Response = true }), -1, nil},
		{"a short message is dropped", []byte{1, 2, 3}, -1, nil},
		{"a status query is not implemented", q(func(m *mdns.Msg) { m.Opcode = mdns.OpcodeStatus }), rcodeNotImp, nil},
		{"no question is a format error", q(func(m *mdns.Msg) { m.Question = nil }), rcodeFormErr, nil},
		{"two OPT records are a format error", q(func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.Extra = append(m.Extra, m.Extra[0])
		}), rcodeFormErr, nil},
		{"EDNS version 1 gets BADVERS", q(func(m *mdns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().SetVersion(1)
		}), rcodeBadVers, nil},
		{"a truncated question is a format error", q(nil)[:20], rcodeFormErr, nil},
		{"records in the answer section are skipped", q(func(m *mdns.Msg) {
			m.Answer = append(m.Answer, rr(t, "x.example. 1 IN A 192.0.2.9"))
			m.SetEdns0(1300, false)
		}), rcodeSuccess, func(t *testing.T, q *query) {
			if !q.edns || q.udpSize != 1300 {
				t.Errorf("OPT after an answer record not read: %+v", q)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q query
			rcode, _ := parseQuery(tt.msg, &q)
			if rcode != tt.rcode {
				t.Fatalf("rcode %d, want %d", rcode, tt.rcode)
			}
			if tt.check != nil {
				tt.check(t, &q)
			}
		})
	}
}

func TestACompressedQuestionIsAFormatError(t *testing.T) {
	// Header, then a question whose name is a pointer to offset 12 (itself).
	msg := []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1}
	var q query
	if rcode, err := parseQuery(msg, &q); rcode != rcodeFormErr || err == nil {
		t.Errorf("rcode %d err %v, want FORMERR", rcode, err)
	}
}

func TestErrorResponsesEchoTheQuery(t *testing.T) {
	m := new(mdns.Msg)
	m.SetQuestion("Mixed.Case.example.", mdns.TypeTXT)
	m.Id = 4242
	m.CheckingDisabled = true
	m.SetEdns0(1232, true)
	var q query
	if _, err := parseQuery(mustPack(t, m), &q); err != nil {
		t.Fatal(err)
	}
	b := appendError(nil, &q, rcodeServFail, edeNoReachableAuthority, 1232)
	var r mdns.Msg
	if err := r.Unpack(b); err != nil {
		t.Fatalf("our SERVFAIL does not unpack: %v", err)
	}
	if r.Id != 4242 || r.Question[0] != m.Question[0] || r.Rcode != mdns.RcodeServerFailure || !r.CheckingDisabled || !r.Response {
		t.Errorf("got %v", &r)
	}
	if o := r.IsEdns0(); o == nil || !o.Do() {
		t.Errorf("OPT with DO missing: %v", &r)
	}
	if ede := extendedError(&r); ede != mdns.ExtendedErrorCodeNoReachableAuthority {
		t.Errorf("EDE %d, want %d", ede, mdns.ExtendedErrorCodeNoReachableAuthority)
	}
}

func TestUpstreamOPTIsReplacedEvenWhenNotLast(t *testing.T) {
	m := new(mdns.Msg)
	m.SetQuestion("example.", mdns.TypeA)
	m.Id = 7
	r := new(mdns.Msg)
	r.SetReply(m)
	r.Answer = append(r.Answer, rr(t, "example. 60 IN A 192.0.2.1"))
	r.SetEdns0(4096, false)
	// An OPT followed by another record: rebuilt through miekg/dns.
	r.Extra = append(r.Extra, rr(t, "glue.example. 30 IN A 192.0.2.2"))
	b := mustPack(t, r)
	a, err := parseAnswer(b, 7, lowerName(nil, mustPack(t, m)[headerLen:]))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var out mdns.Msg
	if err := out.Unpack(a.wire); err != nil {
		t.Fatalf("stored answer does not unpack: %v", err)
	}
	if out.IsEdns0() != nil || len(out.Extra) != 1 || len(a.ttlOff) != 2 {
		t.Errorf("stored answer %v with %d TTLs, want the glue record only and 2 TTLs", &out, len(a.ttlOff))
	}
}

func TestAnswersForAnotherQuestionAreRejected(t *testing.T) {
	m := new(mdns.Msg)
	m.SetQuestion("asked.example.", mdns.TypeA)
	m.Id = 9
	q := mustPack(t, m)[headerLen:]
	other := new(mdns.Msg)
	other.SetQuestion("other.example.", mdns.TypeA)
	r := new(mdns.Msg)
	r.SetReply(other)
	r.Id = 9
	if _, err := parseAnswer(mustPack(t, r), 9, q); err != errMismatch {
		t.Errorf("answer to another question: err %v, want errMismatch", err)
	}
	r.SetReply(m)
	r.Id = 10
	if _, err := parseAnswer(mustPack(t, r), 9, q); err != errMismatch {
		t.Errorf("answer with another ID: err %v, want errMismatch", err)
	}
}

func TestAppendAnswerTruncatesToTheClientLimit(t *testing.T) {
	a, key := answerFor(t, "example.", 60)
	m := new(mdns.Msg)
	m.SetQuestion("EXAMPLE.", mdns.TypeA)
	m.SetEdns0(512, false)
	var q query
	if _, err := parseQuery(mustPack(t, m), &q); err != nil {
		t.Fatal(err)
	}
	_ = key
	full := appendAnswer(nil, &q, a, 10, 50, 512, 1232)
	cut := appendAnswer(nil, &q, a, 10, 50, len(full)-1, 1232)
	var r mdns.Msg
	if err := r.Unpack(full); err != nil || r.Truncated || len(r.Answer) != 1 || r.Answer[0].Header().Ttl != 50 {
		t.Errorf("full answer %v (err %v), want one record with TTL 50", &r, err)
	}
	if err := r.Unpack(cut); err != nil || !r.Truncated || len(r.Answer) != 0 || r.IsEdns0() == nil {
		t.Errorf("cut answer %v (err %v), want TC, no records, an OPT", &r, err)
	}
	if !bytes.Equal(cut[headerLen:headerLen+len(q.question)], q.question) {
		t.Errorf("question not echoed in the truncated answer")
	}
}
