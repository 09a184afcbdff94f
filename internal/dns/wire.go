package dns

import (
	"encoding/binary"
	"errors"
)

// The request path reads and writes DNS messages in wire format rather than
// unpacking them into github.com/miekg/dns structures: a cache hit then costs
// a map lookup and a copy with no allocation, which is what lets the
// forwarder keep up with dnsmasq (which also works on packet bytes). The
// layout is RFC 1035 §4.1; miekg/dns serves as the oracle in the fuzz tests.

const (
	headerLen = 12

	typeOPT  = 41
	typeSOA  = 6
	typeAXFR = 252
	typeIXFR = 251

	rcodeSuccess  = 0
	rcodeFormErr  = 1
	rcodeServFail = 2
	rcodeNXDomain = 3
	rcodeNotImp   = 4
	rcodeRefused  = 5
	rcodeBadVers  = 16 // extended: upper 8 bits travel in the OPT TTL

	// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD).
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagAD = 1 << 5
	flagCD = 1 << 4

	opcodeShift = 11
	opcodeMask  = 0xF

	// ednsDO is the DNSSEC OK bit in the OPT TTL (RFC 3225).
	ednsDO = 1 << 15

	// minUDPSize is what every DNS client can take (RFC 1035 §2.3.4).
	minUDPSize = 512
	maxMsgSize = 65535

	maxNameLen = 255
)

var (
	errShort     = errors.New("message too short")
	errPointer   = errors.New("compression pointer where none is allowed")
	errLabel     = errors.New("bad label")
	errNameLen   = errors.New("name longer than 255 octets")
	errNotQuery  = errors.New("message is a response")
	errTwoOPT    = errors.New("more than one OPT record")
	errOPTName   = errors.New("OPT record with a non-root owner")
	errQuestions = errors.New("question count is not 1")
)

// query is what the forwarder needs from a client's request.
type query struct {
	id    uint16
	flags uint16
	// question is the question section exactly as the client sent it (name,
	// type, class), so the response echoes its case (DNS 0x20).
	question []byte
	qtype    uint16
	qclass   uint16
	edns     bool
	udpSize  uint16 // advertised by the client when edns
	do       bool
	version  uint8
}

func (q *query) opcode() int { return int(q.flags>>opcodeShift) & opcodeMask }
func (q *query) cd() bool    { return q.flags&flagCD != 0 }
func (q *query) ad() bool    { return q.flags&flagAD != 0 }

// qnameLen is the length of the question's name in wire form.
func (q *query) qnameLen() int { return len(q.question) - 4 }

// parseQuery reads a client request. It fills q as far as it got, so a
// FORMERR can still echo the ID (and the question when it was read). The
// returned rcode is what to answer when the request is not one to forward:
// -1 means drop silently (not a query at all), rcodeSuccess means forward.
func parseQuery(msg []byte, q *query) (rcode int, err error) {
	if len(msg) < headerLen {
		return -1, errShort
	}
	q.id = binary.BigEndian.Uint16(msg)
	q.flags = binary.BigEndian.Uint16(msg[2:])
	if q.flags&flagQR != 0 {
		// Answering a response invites reflection loops; drop it.
		return -1, errNotQuery
	}
	qd := binary.BigEndian.Uint16(msg[4:])
	an := binary.BigEndian.Uint16(msg[6:])
	ns := binary.BigEndian.Uint16(msg[8:])
	ar := binary.BigEndian.Uint16(msg[10:])
	if q.opcode() != 0 {
		return rcodeNotImp, nil
	}
	if qd != 1 {
		return rcodeFormErr, errQuestions
	}
	off, err := skipName(msg, headerLen, false)
	if err != nil {
		return rcodeFormErr, err
	}
	if off+4 > len(msg) {
		return rcodeFormErr, errShort
	}
	q.question = msg[headerLen : off+4]
	q.qtype = binary.BigEndian.Uint16(msg[off:])
	q.qclass = binary.BigEndian.Uint16(msg[off+2:])
	off += 4
	// Answer and authority records in a query are unusual but legal
	// (RFC 1035 does not forbid them); skip them to reach the OPT record.
	for i := 0; i < int(an)+int(ns); i++ {
		if off, err = skipRR(msg, off); err != nil {
			return rcodeFormErr, err
		}
	}
	for i := 0; i < int(ar); i++ {
		start := off
		if off, err = skipName(msg, off, true); err != nil {
			return rcodeFormErr, err
		}
		if off+10 > len(msg) {
			return rcodeFormErr, errShort
		}
		typ := binary.BigEndian.Uint16(msg[off:])
		rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
		if off+10+rdlen > len(msg) {
			return rcodeFormErr, errShort
		}
		if typ == typeOPT {
			// RFC 6891 §6.1.1: one OPT at most, owned by the root.
			if q.edns {
				return rcodeFormErr, errTwoOPT
			}
			if off != start+1 || msg[start] != 0 {
				return rcodeFormErr, errOPTName
			}
			q.edns = true
			q.udpSize = binary.BigEndian.Uint16(msg[off+2:])
			q.version = msg[off+5]
			q.do = binary.BigEndian.Uint16(msg[off+6:])&ednsDO != 0
		}
		off += 10 + rdlen
	}
	if q.edns && q.version != 0 {
		return rcodeBadVers, nil
	}
	return rcodeSuccess, nil
}

// skipName returns the offset just past the name starting at off. Pointers
// are not followed (the name's length in this message is all we need); when
// pointers is false, one is an error (a question is never compressed in the
// messages we accept, which keeps the echoed question a plain copy).
func skipName(msg []byte, off int, pointers bool) (int, error) {
	total := 0
	for {
		if off >= len(msg) {
			return 0, errShort
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			total += c + 1
			if total+1 > maxNameLen {
				return 0, errNameLen
			}
			off += c + 1
		case 0xC0:
			if !pointers {
				return 0, errPointer
			}
			if off+2 > len(msg) {
				return 0, errShort
			}
			return off + 2, nil
		default:
			// 0x40 and 0x80 are the obsolete extended label types.
			return 0, errLabel
		}
	}
}

// skipRR returns the offset just past the resource record at off.
func skipRR(msg []byte, off int) (int, error) {
	off, err := skipName(msg, off, true)
	if err != nil {
		return 0, err
	}
	if off+10 > len(msg) {
		return 0, errShort
	}
	rdlen := int(binary.BigEndian.Uint16(msg[off+8:]))
	off += 10 + rdlen
	if off > len(msg) {
		return 0, errShort
	}
	return off, nil
}

// lowerName appends the name (wire form, no pointers) in lower case: names
// compare case-insensitively in ASCII only (RFC 4343).
func lowerName(dst, name []byte) []byte {
	for _, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// equalFoldWire reports whether two wire-form byte strings are equal with
// ASCII letters folded. Label length octets are below 'A' (labels are at
// most 63 octets), so folding them is harmless.
func equalFoldWire(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x >= 'A' && x <= 'Z' {
			x += 'a' - 'A'
		}
		if y >= 'A' && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// appendOPT appends an OPT pseudo-record advertising udpSize, echoing the
// DO bit, with the upper bits of an extended rcode, and an Extended DNS
// Error option (RFC 8914) when ede is not negative.
func appendOPT(b []byte, udpSize uint16, do bool, rcode int, ede int) []byte {
	var flags uint16
	if do {
		flags = ednsDO
	}
	b = append(b, 0, 0, typeOPT)
	b = binary.BigEndian.AppendUint16(b, udpSize)
	b = append(b, byte(rcode>>4), 0)
	b = binary.BigEndian.AppendUint16(b, flags)
	if ede < 0 {
		return append(b, 0, 0)
	}
	// option code 15 (EDE), length 2, info-code.
	b = append(b, 0, 6, 0, 15, 0, 2)
	return binary.BigEndian.AppendUint16(b, uint16(ede))
}

// Extended DNS Error info-codes (RFC 8914 §4).
const (
	edeNone                 = -1
	edeNoReachableAuthority = 22
)

// responseFlags builds the header flags of a response to q carrying rcode,
// with AD kept only for clients that asked for it (RFC 6840 §5.8).
func responseFlags(q *query, upstream uint16, rcode int) uint16 {
	f := uint16(flagQR|flagRA) | q.flags&(flagRD|flagCD)
	if upstream&flagAD != 0 && (q.do || q.ad()) {
		f |= flagAD
	}
	return f | uint16(rcode&0xF)
}

// appendError appends a response to q that carries only the question (when
// it was read) and rcode: FORMERR, NOTIMP, SERVFAIL, REFUSED, BADVERS.
func appendError(b []byte, q *query, rcode, ede int, udpSize uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, q.id)
	b = binary.BigEndian.AppendUint16(b, responseFlags(q, 0, rcode)|q.flags&(opcodeMask<<opcodeShift))
	qd := 0
	if q.question != nil {
		qd = 1
	}
	ar := 0
	if q.edns {
		ar = 1
	}
	b = append(b, 0, byte(qd), 0, 0, 0, 0, 0, byte(ar))
	b = append(b, q.question...)
	if q.edns {
		// BADVERS answers advertise version 0, the one we speak.
		b = appendOPT(b, udpSize, q.do, rcode, ede)
	}
	return b
}
