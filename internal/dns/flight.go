package dns

import (
	"sync"
	"sync/atomic"
)

// flight coalesces identical questions in flight: the first asks upstream,
// the others wait for its answer. The key is the cache key (question folded
// to lower case, type, class, DO and CD bits), so every waiter can be served
// from the one answer; each still gets its own ID, question case and EDNS.
type flight struct {
	mu     sync.Mutex
	calls  map[string]*call
	joined atomic.Uint64 // callers that waited for another's call
}

type call struct {
	done chan struct{}
	ans  *answer
	err  error
}

// do runs fn once for all concurrent callers with the same key. shared
// reports whether this caller joined a call already in flight.
func (f *flight) do(key []byte, fn func() (*answer, error)) (ans *answer, err error, shared bool) {
	f.mu.Lock()
	if c, ok := f.calls[string(key)]; ok {
		f.mu.Unlock()
		f.joined.Add(1)
		<-c.done
		return c.ans, c.err, true
	}
	if f.calls == nil {
		f.calls = make(map[string]*call)
	}
	c := &call{done: make(chan struct{})}
	k := string(key)
	f.calls[k] = c
	f.mu.Unlock()

	defer func() {
		f.mu.Lock()
		delete(f.calls, k)
		f.mu.Unlock()
		close(c.done)
	}()
	c.ans, c.err = fn()
	return c.ans, c.err, false
}
