package hmacpool

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // SurveyMonkey signs with HMAC-SHA1; tested as a second hash
	"crypto/sha256"
	"fmt"
	"hash"
	"sync"
	"testing"
)

// TestPoolsGiveHMACsSums: for every key, across the pools starting over
// and from several goroutines, a pooled HMAC gives crypto/hmac's sum, also
// when it was used before with another message.
func TestPoolsGiveHMACsSums(t *testing.T) {
	for _, h := range []struct {
		name string
		new  func() hash.Hash
	}{{"SHA-256", sha256.New}, {"SHA-1", sha1.New}} {
		t.Run(h.name, func(t *testing.T) {
			const max, keys = 8, 19
			p := New(h.new, max)
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 3 * keys {
						key := []byte(fmt.Sprintf("key-%d", (i*g+i)%keys))
						msg := []byte(fmt.Sprintf("message %d of %d", i, g))
						want := hmac.New(h.new, key)
						want.Write(msg)
						m := p.Get(key)
						m.Write(msg)
						got := bytes.Clone(m.Digest())
						m.Put()
						if !bytes.Equal(got, want.Sum(nil)) {
							t.Errorf("key %s: %x, want %x", key, got, want.Sum(nil))
							return
						}
					}
				}()
			}
			wg.Wait()
			if n := len(p.byKey); n > max {
				t.Fatalf("%d keys held, at most %d", n, max)
			}
		})
	}
}

// TestKeyIsCopied: the pool keys its HMACs with a copy, not the caller's
// buffer, which may change.
func TestKeyIsCopied(t *testing.T) {
	p := New(sha256.New, 4)
	key := []byte("key-a")
	m := p.Get(key)
	m.Put()
	copy(key, "key-b")
	want := hmac.New(sha256.New, []byte("key-a"))
	want.Write([]byte("x"))
	// The second HMAC is made after the change (the pool holds one).
	for range 2 {
		m = p.Get([]byte("key-a"))
		defer m.Put()
		m.Write([]byte("x"))
		if got := m.Digest(); !bytes.Equal(got, want.Sum(nil)) {
			t.Fatalf("keyed with the changed buffer: %x, want %x", got, want.Sum(nil))
		}
	}
}

// BenchmarkPooled against BenchmarkNew: what a pooled HMAC saves on a
// webhook's body.
//
//	go test ./internal/hmacpool/ -run '^$' -bench . -benchmem
func BenchmarkPooled(b *testing.B) {
	p, key, body := New(sha256.New, 4), []byte("bench-secret"), bytes.Repeat([]byte("x"), 1000)
	for b.Loop() {
		m := p.Get(key)
		m.Write(body)
		_ = m.Digest()
		m.Put()
	}
}

func BenchmarkNew(b *testing.B) {
	key, body := []byte("bench-secret"), bytes.Repeat([]byte("x"), 1000)
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(body)
		_ = m.Sum(nil)
	}
}
