package dns

import (
	"fmt"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// answerFor builds the answer a forwarder would cache for name, with ttl.
func answerFor(t *testing.T, name string, ttl uint32) (*answer, []byte) {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, mdns.TypeA)
	r := new(mdns.Msg)
	r.SetReply(m)
	r.Answer = append(r.Answer, rr(t, fmt.Sprintf("%s %d IN A 192.0.2.1", name, ttl)))
	b, err := r.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var q query
	if _, err := parseQuery(mustPack(t, m), &q); err != nil {
		t.Fatal(err)
	}
	key := appendKey(nil, &q)
	a, err := parseAnswer(b, m.Id, key[:len(key)-1])
	if err != nil {
		t.Fatalf("parse answer: %v", err)
	}
	return a, key
}

func mustPack(t *testing.T, m *mdns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTheCacheEvictsTheLeastRecentlyUsedBeyondItsEntryBound(t *testing.T) {
	c := newCache(3, 1<<20, 0, time.Hour, time.Hour)
	now := time.Unix(0, 0).UnixNano()
	keys := make([][]byte, 4)
	for i := range keys {
		var a *answer
		a, keys[i] = answerFor(t, fmt.Sprintf("n%d.example.", i), 60)
		if i == 3 {
			// Touch n0 so that n1 is the least recently used.
			if _, _, _, ok := c.get(keys[0], now); !ok {
				t.Fatal("n0 missing before eviction")
			}
		}
		c.put(keys[i], a, now)
	}
	for i, want := range []bool{true, false, true, true} {
		if _, _, _, ok := c.get(keys[i], now); ok != want {
			t.Errorf("n%d cached = %v, want %v", i, ok, want)
		}
	}
	if n, _ := c.stats(); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
	if c.evictions.Load() != 1 {
		t.Errorf("%d evictions, want 1", c.evictions.Load())
	}
}

func TestTheCacheStaysWithinItsByteBound(t *testing.T) {
	const limit = 64 << 10
	c := newCache(1_000_000, limit, 0, time.Hour, time.Hour)
	for i := range 5000 {
		a, k := answerFor(t, fmt.Sprintf("host-%d.example.com.", i), 60)
		c.put(k, a, 0)
	}
	n, bytes := c.stats()
	if bytes > limit {
		t.Errorf("cache holds %d bytes, over its %d bound", bytes, limit)
	}
	if n == 0 || n >= 5000 {
		t.Errorf("cache holds %d entries, want some but not all", n)
	}
}

func TestTheCacheKeyTellsApartTypeClassAndDNSSECBits(t *testing.T) {
	base := func() *mdns.Msg {
		m := new(mdns.Msg)
		m.SetQuestion("Example.COM.", mdns.TypeA)
		return m
	}
	key := func(m *mdns.Msg) string {
		var q query
		if _, err := parseQuery(mustPack(t, m), &q); err != nil {
			t.Fatal(err)
		}
		return string(appendKey(nil, &q))
	}
	ref := key(base())
	lower := base()
	lower.Question[0].Name = "example.com."
	if key(lower) != ref {
		t.Errorf("case changes the key")
	}
	variants := map[string]func(m *mdns.Msg){
		"type":  func(m *mdns.Msg) { m.Question[0].Qtype = mdns.TypeAAAA },
		"class": func(m *mdns.Msg) { m.Question[0].Qclass = mdns.ClassCHAOS },
		"DO":    func(m *mdns.Msg) { m.SetEdns0(1232, true) },
		"CD":    func(m *mdns.Msg) { m.CheckingDisabled = true },
	}
	for name, change := range variants {
		m := base()
		change(m)
		if key(m) == ref {
			t.Errorf("%s does not change the key", name)
		}
	}
	plainEDNS := base()
	plainEDNS.SetEdns0(4096, false)
	if key(plainEDNS) != ref {
		t.Errorf("EDNS without DO changes the key; the OPT record is per client")
	}
}

func TestCacheTTLsAreBounded(t *testing.T) {
	c := newCache(10, 1<<20, 5*time.Second, time.Minute, 10*time.Second)
	tests := []struct {
		name string
		a    answer
		want uint32
	}{
		{"a TTL inside the bounds is kept", answer{ttl: 30, cacheable: true}, 30},
		{"a long TTL is cut to the maximum", answer{ttl: 3600, cacheable: true}, 60},
		{"a short TTL is raised to the minimum", answer{ttl: 1, cacheable: true}, 5},
		{"a negative TTL is cut to the negative maximum", answer{ttl: 300, cacheable: true, negative: true}, 10},
		{"an uncacheable answer is not kept", answer{ttl: 300}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.ttl(&tt.a); got != tt.want {
				t.Errorf("ttl %d, want %d", got, tt.want)
			}
		})
	}
}
