// Package hmacpool keeps keyed HMACs for reuse. Keying an HMAC allocates
// its two hash states and hashes two blocks: as much work as checking a
// small payload, on every webhook and every browser answer. The keys come
// from Secrets, which change only when rotated; a Pools starts over when
// it holds more than its bound.
package hmacpool

import (
	"crypto/hmac"
	"hash"
	"sync"
)

// Pools holds one pool of keyed HMACs per key.
type Pools struct {
	newHash func() hash.Hash
	max     int

	mu    sync.RWMutex
	byKey map[string]*sync.Pool
}

// New returns pools of HMACs of newHash, for at most max keys at a time.
func New(newHash func() hash.Hash, max int) *Pools {
	return &Pools{newHash: newHash, max: max}
}

// MAC is a keyed HMAC, reset, with room for its sum. Put it back when done.
type MAC struct {
	hash.Hash
	sum  [64]byte
	pool *sync.Pool
}

// Digest is the HMAC of what was written; valid until Put.
func (m *MAC) Digest() []byte { return m.Sum(m.sum[:0]) }

// Put returns m to its pool.
func (m *MAC) Put() { m.pool.Put(m) }

// Get returns an HMAC keyed with key, reset.
func (p *Pools) Get(key []byte) *MAC {
	pool := p.pool(key)
	m := pool.Get().(*MAC)
	m.Reset()
	return m
}

func (p *Pools) pool(key []byte) *sync.Pool {
	p.mu.RLock()
	pool := p.byKey[string(key)]
	p.mu.RUnlock()
	if pool != nil {
		return pool
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pool = p.byKey[string(key)]; pool != nil {
		return pool
	}
	if p.byKey == nil || len(p.byKey) >= p.max {
		p.byKey = map[string]*sync.Pool{}
	}
	own := string(key)
	pool = &sync.Pool{}
	pool.New = func() any { return &MAC{Hash: hmac.New(p.newHash, []byte(own)), pool: pool} }
	p.byKey[own] = pool
	return pool
}
