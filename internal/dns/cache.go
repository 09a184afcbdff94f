package dns

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// cache holds answers keyed by question (name folded to lower case, type,
// class) and the DO and CD bits, which change what an upstream returns. It
// is cut into shards, each an LRU list under its own lock, and bounded both
// by entries and by bytes so that a flood of unique names cannot grow it
// without limit.
type cache struct {
	seed       maphash.Seed
	shards     []cacheShard
	mask       uint64
	maxEntries int // per shard
	maxBytes   int // per shard

	minTTL, maxTTL, negMaxTTL uint32

	evictions atomic.Uint64
}

type cacheShard struct {
	mu         sync.Mutex
	m          map[string]*entry
	head, tail *entry // head is the most recently used
	bytes      int
	_          [40]byte // keep shards' locks on separate cache lines
}

type entry struct {
	key        string
	ans        *answer
	stored     int64 // unix nanoseconds
	expires    int64
	size       int
	prev, next *entry
}

// entryOverhead approximates the bytes an entry costs beyond its key and
// message: the entry, the map slot, the answer struct and slice headers.
const entryOverhead = 200

// newCache sizes the shards so that small caches (tests, tiny hosts) stay a
// single exact LRU while large ones spread their lock over up to 64 shards.
func newCache(entries int, bytes int64, minTTL, maxTTL, negMaxTTL time.Duration) *cache {
	n := 1
	for n < 64 && entries/(n*2) >= 256 {
		n *= 2
	}
	c := &cache{
		seed:       maphash.MakeSeed(),
		shards:     make([]cacheShard, n),
		mask:       uint64(n - 1),
		maxEntries: max(1, entries/n),
		maxBytes:   int(max(1, bytes/int64(n))),
		minTTL:     uint32(minTTL / time.Second),
		maxTTL:     uint32(maxTTL / time.Second),
		negMaxTTL:  uint32(negMaxTTL / time.Second),
	}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

// appendKey appends the cache key of q to b.
func appendKey(b []byte, q *query) []byte {
	b = lowerName(b, q.question[:q.qnameLen()])
	b = binary.BigEndian.AppendUint16(b, q.qtype)
	b = binary.BigEndian.AppendUint16(b, q.qclass)
	var f byte
	if q.do {
		f |= 1
	}
	if q.cd() {
		f |= 2
	}
	return append(b, f)
}

func (c *cache) shard(key []byte) *cacheShard {
	return &c.shards[maphash.Bytes(c.seed, key)&c.mask]
}

// get returns the answer for key with its age and remaining lifetime in
// seconds. An expired entry is removed and reported as a miss.
func (c *cache) get(key []byte, now int64) (a *answer, age, remaining uint32, ok bool) {
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[string(key)] // no allocation: the compiler special-cases this
	if e == nil {
		s.mu.Unlock()
		return nil, 0, 0, false
	}
	if now >= e.expires {
		s.remove(e)
		s.mu.Unlock()
		return nil, 0, 0, false
	}
	s.moveToFront(e)
	a, stored, expires := e.ans, e.stored, e.expires
	s.mu.Unlock()
	return a, uint32((now - stored) / int64(time.Second)), uint32((expires - now) / int64(time.Second)), true
}

// ttl is how long a may be kept, after the configured bounds; zero means
// not at all.
func (c *cache) ttl(a *answer) uint32 {
	if !a.cacheable {
		return 0
	}
	t := a.ttl
	if a.negative {
		t = min(t, c.negMaxTTL)
	} else {
		t = min(t, c.maxTTL)
	}
	return max(t, c.minTTL)
}

// put stores a under key, evicting the least recently used entries of the
// shard until it is back within its bounds.
func (c *cache) put(key []byte, a *answer, now int64) {
	ttl := c.ttl(a)
	if ttl == 0 {
		return
	}
	e := &entry{
		key:     string(key),
		ans:     a,
		stored:  now,
		expires: now + int64(ttl)*int64(time.Second),
	}
	e.size = len(e.key) + cap(a.wire) + 6*len(a.ttlOff) + entryOverhead
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[e.key]; old != nil {
		s.remove(old)
	}
	if e.size > c.maxBytes {
		return
	}
	s.m[e.key] = e
	s.pushFront(e)
	s.bytes += e.size
	for len(s.m) > c.maxEntries || s.bytes > c.maxBytes {
		s.remove(s.tail)
		c.evictions.Add(1)
	}
}

// stats returns the number of entries and their approximate bytes.
func (c *cache) stats() (entries, bytes int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		entries += len(s.m)
		bytes += s.bytes
		s.mu.Unlock()
	}
	return entries, bytes
}

func (s *cacheShard) remove(e *entry) {
	delete(s.m, e.key)
	s.bytes -= e.size
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *entry) {
	e.prev, e.next = nil, s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *cacheShard) moveToFront(e *entry) {
	if s.head == e {
		return
	}
	// e is not the head, so it has a predecessor.
	e.prev.next = e.next
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, s.head
	s.head.prev = e
	s.head = e
}
