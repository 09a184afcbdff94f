package dns

import "encoding/binary"

// sizeLimit is the largest response q's client takes: 64 KiB over TCP;
// over UDP 512 octets without EDNS, else the smaller of the client's and our
// advertised size, never below 512 (RFC 6891 §6.2.5).
func (q *query) sizeLimit(udp bool, ours uint16) int {
	if !udp {
		return maxMsgSize
	}
	if !q.edns {
		return minUDPSize
	}
	return int(max(min(q.udpSize, ours), minUDPSize))
}

// appendAnswer appends the response to q built from a: q's ID and question
// (case included), the header flags a forwarder owes its client, every TTL
// aged by age seconds and capped at remaining, and an OPT record for an EDNS
// client. When the result exceeds limit, only the header and question are
// kept, with TC set, and the client retries over TCP (RFC 2181 §9).
func appendAnswer(b []byte, q *query, a *answer, age, remaining uint32, limit int, udpSize uint16) []byte {
	start := len(b)
	b = append(b, a.wire...)
	m := b[start:]
	binary.BigEndian.PutUint16(m, q.id)
	flags := responseFlags(q, a.flags, a.rcode)
	copy(m[headerLen:], q.question)
	for i, off := range a.ttlOff {
		t := a.ttls[i]
		if t > age {
			t -= age
		} else {
			t = 0
		}
		binary.BigEndian.PutUint32(m[off:], min(t, remaining))
	}
	size := len(m)
	if q.edns {
		size += 11
	}
	if size > limit {
		b = b[:start+headerLen+len(q.question)]
		m = b[start:]
		flags |= flagTC
		clear(m[6:headerLen])
	}
	binary.BigEndian.PutUint16(m[2:], flags)
	if q.edns {
		b = appendOPT(b, udpSize, q.do, a.rcode, edeNone)
		m = b[start:]
		binary.BigEndian.PutUint16(m[10:], binary.BigEndian.Uint16(m[10:])+1)
	}
	return b
}
