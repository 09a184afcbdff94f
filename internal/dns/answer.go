package dns

import (
	"encoding/binary"
	"errors"
	"fmt"

	mdns "github.com/miekg/dns"
)

// answer is an upstream response prepared for reuse: the message without
// its OPT record (each client gets its own), with the offset and original
// value of every TTL so that a copy can be aged in place.
type answer struct {
	wire   []byte // header with ID 0, question in lower case, records
	flags  uint16 // upstream header flags (AD and rcode are used)
	rcode  int
	ttlOff []uint16
	ttls   []uint32
	// ttl is how long the answer may be reused, in seconds: the smallest
	// TTL in it, and for a negative answer also the SOA MINIMUM
	// (RFC 2308 §5). cacheable is false when the answer must not be reused.
	ttl       uint32
	negative  bool
	cacheable bool
	truncated bool
}

var (
	errMismatch = errors.New("response does not match the query")
	errExtRcode = errors.New("response carries an extended rcode")
)

// parseAnswer checks that resp answers the upstream query (id, question)
// and turns it into an answer. Responses whose OPT record is not the last
// record are rebuilt through miekg/dns first; every server seen in practice
// puts it last (TSIG, which must follow it, is not used upstream).
func parseAnswer(resp []byte, id uint16, question []byte) (*answer, error) {
	if len(resp) < headerLen {
		return nil, errShort
	}
	flags := binary.BigEndian.Uint16(resp[2:])
	if binary.BigEndian.Uint16(resp) != id || flags&flagQR == 0 ||
		int(flags>>opcodeShift)&opcodeMask != 0 || binary.BigEndian.Uint16(resp[4:]) != 1 {
		return nil, errMismatch
	}
	qend := headerLen + len(question)
	if qend > len(resp) || !equalFoldWire(resp[headerLen:qend], question) {
		return nil, errMismatch
	}
	if _, err := skipName(resp, headerLen, false); err != nil {
		return nil, errMismatch
	}
	counts := [3]int{
		int(binary.BigEndian.Uint16(resp[6:])),
		int(binary.BigEndian.Uint16(resp[8:])),
		int(binary.BigEndian.Uint16(resp[10:])),
	}
	a := &answer{flags: flags, rcode: int(flags & 0xF), truncated: flags&flagTC != 0}
	n := counts[0] + counts[1] + counts[2]
	if n > len(resp)/11 {
		// Every record takes at least 11 octets; a count beyond that is a lie.
		return nil, errShort
	}
	a.ttlOff = make([]uint16, 0, n)
	a.ttls = make([]uint32, 0, n)
	off := qend
	optStart, optEnd := -1, -1
	minTTL := uint32(1<<31 - 1)
	soaMin, haveSOA := uint32(0), false
	for sec, cnt := range counts {
		for i := 0; i < cnt; i++ {
			start := off
			var err error
			if off, err = skipName(resp, off, true); err != nil {
				return nil, err
			}
			if off+10 > len(resp) {
				return nil, errShort
			}
			typ := binary.BigEndian.Uint16(resp[off:])
			ttl := binary.BigEndian.Uint32(resp[off+4:])
			rdlen := int(binary.BigEndian.Uint16(resp[off+8:]))
			end := off + 10 + rdlen
			if end > len(resp) {
				return nil, errShort
			}
			if typ == typeOPT {
				if sec != 2 || optStart >= 0 {
					return nil, errTwoOPT
				}
				if resp[off+4] != 0 {
					// BADVERS, BADCOOKIE: nothing a client of ours asked for.
					return nil, errExtRcode
				}
				optStart, optEnd = start, end
				off = end
				continue
			}
			// RFC 2181 §8: a TTL with the top bit set counts as zero.
			if ttl > 1<<31-1 {
				ttl = 0
			}
			a.ttlOff = append(a.ttlOff, uint16(off+4))
			a.ttls = append(a.ttls, ttl)
			minTTL = min(minTTL, ttl)
			if typ == typeSOA && sec == 1 && rdlen >= 22 {
				soaMin = min(ttl, binary.BigEndian.Uint32(resp[end-4:]))
				haveSOA = true
			}
			off = end
		}
	}
	if optStart >= 0 && optEnd != off {
		return reparseWithoutOPT(resp, id, question)
	}
	wire := make([]byte, 0, off)
	if optStart >= 0 {
		wire = append(wire, resp[:optStart]...)
		binary.BigEndian.PutUint16(wire[10:], uint16(counts[2]-1))
	} else {
		wire = append(wire, resp[:off]...)
	}
	binary.BigEndian.PutUint16(wire, 0)
	copy(wire[headerLen:], question) // the query's question, already in lower case
	a.wire = wire

	a.negative = a.rcode == rcodeNXDomain || (a.rcode == rcodeSuccess && counts[0] == 0)
	switch {
	case a.truncated:
	case a.rcode != rcodeSuccess && a.rcode != rcodeNXDomain:
	case a.negative:
		// RFC 2308 §5: without an SOA a negative answer is not cached.
		if haveSOA {
			a.ttl = min(minTTL, soaMin)
			a.cacheable = true
		}
	default:
		a.ttl = minTTL
		a.cacheable = true
	}
	return a, nil
}

// reparseWithoutOPT handles the rare response whose OPT record is followed
// by other records: miekg/dns rebuilds it without the OPT, and the rebuilt
// message (which has no OPT) goes through parseAnswer again.
func reparseWithoutOPT(resp []byte, id uint16, question []byte) (*answer, error) {
	var m mdns.Msg
	if err := m.Unpack(resp); err != nil {
		return nil, fmt.Errorf("unpack response: %w", err)
	}
	extra := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != typeOPT {
			extra = append(extra, rr)
		}
	}
	m.Extra = extra
	m.Compress = true
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack response: %w", err)
	}
	return parseAnswer(b, id, question)
}
