package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Request headers Rapport adds with spec.traffic.gatewayAPI.tagRequests
// (internal/routing/gatewayapi HeaderVariant and HeaderSegment).
const (
	HeaderVariant = "x-rapport-variant"
	HeaderSegment = "x-rapport-segment"
)

// Reply is what a backend answers, as JSON: who served the request and the
// x-rapport-* headers it received.
type Reply struct {
	// Backend is the backend's name (e.g. the variant's Service).
	Backend string `json:"backend"`
	// Addr is the address that served the request (a pod, in replica mode).
	Addr string `json:"addr"`
	// Page is the backend's page, for people watching the demo.
	Page string `json:"page,omitempty"`
	// Host and Path of the request as the backend saw it.
	Host string `json:"host"`
	Path string `json:"path"`
	// Variant and Segment are the x-rapport-variant and x-rapport-segment
	// request headers ("" when absent).
	Variant string `json:"variant,omitempty"`
	Segment string `json:"segment,omitempty"`
}

// Backend is a small HTTP server standing for one variant's pods.
type Backend struct {
	Name, Addr string
	srv        *http.Server
	mux        *http.ServeMux
	done       chan struct{}
}

// StartBackend serves Reply{Backend: name, Page: page} on addr, for every
// path but those given to Handle.
func StartBackend(name, addr, page string) (*Backend, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", name, err)
	}
	addr = ln.Addr().String() // the port chosen when addr ends with :0
	b := &Backend{Name: name, Addr: addr, mux: http.NewServeMux(), done: make(chan struct{})}
	b.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Reply{
			Backend: name, Addr: addr, Page: page, Host: r.Host, Path: r.URL.Path,
			Variant: r.Header.Get(HeaderVariant), Segment: r.Header.Get(HeaderSegment),
		})
	})
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: b.mux}
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("backend %s on %s stopped: %v\n", name, addr, err)
		}
	}()
	return b, nil
}

// Handle serves pattern (an http.ServeMux pattern, e.g. "/checkout/survey")
// with h instead of the Reply; safe while the backend runs.
func (b *Backend) Handle(pattern string, h http.Handler) { b.mux.Handle(pattern, h) }

// Close stops the backend.
func (b *Backend) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	<-b.done
}
