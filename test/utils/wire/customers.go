package wire

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Request is what a customer sends through the proxy.
type Request struct {
	// Host is the Host header (the route's hostname).
	Host string
	// Path, e.g. /checkout.
	Path string
	// Header, Query and Cookies mark the customer's segment.
	Header  map[string]string
	Query   map[string]string
	Cookies map[string]string
}

func (r Request) String() string {
	parts := make([]string, 0, len(r.Header)+len(r.Query)+len(r.Cookies))
	for _, k := range slices.Sorted(maps.Keys(r.Header)) {
		parts = append(parts, fmt.Sprintf("header %s=%s", k, r.Header[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Query)) {
		parts = append(parts, fmt.Sprintf("query %s=%s", k, r.Query[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(r.Cookies)) {
		parts = append(parts, fmt.Sprintf("cookie %s=%s", k, r.Cookies[k]))
	}
	return fmt.Sprintf("GET %s%s [%s]", r.Host, r.Path, strings.Join(parts, ", "))
}

// Client sends customers' requests through the proxy.
type Client struct {
	base        string
	http        *http.Client
	concurrency int
}

// NewClient returns a client for the proxy's listener (host:port) that keeps
// up to concurrency requests in flight in Split.
func NewClient(listen string, concurrency int) *Client {
	tr := &http.Transport{MaxIdleConnsPerHost: concurrency, MaxConnsPerHost: concurrency, IdleConnTimeout: 30 * time.Second}
	return &Client{base: "http://" + listen, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, concurrency: concurrency}
}

// URL is the proxy's base URL (for a cookie jar's cookies).
func (c *Client) URL() *url.URL {
	u, _ := url.Parse(c.base)
	return u
}

// StatusError is a non-200 answer of the proxy.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// Get sends one request and returns the backend's reply. A jar, if given,
// sends and keeps cookies the proxy sets (session persistence).
func (c *Client) Get(ctx context.Context, r Request, jar http.CookieJar) (Reply, error) {
	u := c.base + r.Path
	if len(r.Query) > 0 {
		q := url.Values{}
		for k, v := range r.Query {
			q.Set(k, v)
		}
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Reply{}, err
	}
	req.Host = r.Host
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Cookies)) {
		req.AddCookie(&http.Cookie{Name: k, Value: r.Cookies[k]})
	}
	if jar != nil {
		for _, ck := range jar.Cookies(req.URL) {
			req.AddCookie(ck)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Reply{}, err
	}
	if jar != nil {
		jar.SetCookies(req.URL, resp.Cookies())
	}
	if resp.StatusCode != http.StatusOK {
		return Reply{}, &StatusError{Code: resp.StatusCode, Body: strings.TrimSpace(string(body))}
	}
	var reply Reply
	if err := json.Unmarshal(body, &reply); err != nil {
		return Reply{}, fmt.Errorf("not a backend's reply: %q: %w", body, err)
	}
	return reply, nil
}

// Split is how n requests were served.
type Split struct {
	N int
	// Served counts replies by backend name.
	Served map[string]int
	// Errors counts failed requests by error text.
	Errors map[string]int
	// Replies are the replies, in no particular order.
	Replies []Reply
}

// Share is the fraction of the n requests a backend served.
func (s Split) Share(backend string) float64 {
	if s.N == 0 {
		return 0
	}
	return float64(s.Served[backend]) / float64(s.N)
}

func (s Split) String() string {
	parts := make([]string, 0, len(s.Served)+len(s.Errors))
	for _, b := range slices.Sorted(maps.Keys(s.Served)) {
		parts = append(parts, fmt.Sprintf("%s %d (%.3f)", b, s.Served[b], s.Share(b)))
	}
	for _, e := range slices.Sorted(maps.Keys(s.Errors)) {
		parts = append(parts, fmt.Sprintf("error %q x%d", e, s.Errors[e]))
	}
	return fmt.Sprintf("%d requests: %s", s.N, strings.Join(parts, ", "))
}

// Split sends the request n times, with up to the client's concurrency in
// flight, and counts which backend served each.
func (c *Client) Split(ctx context.Context, r Request, n int) Split {
	s := Split{N: n, Served: map[string]int{}, Errors: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range c.concurrency {
		wg.Go(func() {
			for range next {
				reply, err := c.Get(ctx, r, nil)
				mu.Lock()
				if err != nil {
					s.Errors[err.Error()]++
				} else {
					s.Served[reply.Backend]++
					s.Replies = append(s.Replies, reply)
				}
				mu.Unlock()
			}
		})
	}
	for range n {
		if ctx.Err() != nil {
			break
		}
		next <- struct{}{}
	}
	close(next)
	wg.Wait()
	return s
}

// Tolerance is how far the share of n independent requests sent to a
// backend with probability p may stray from p: z standard deviations of the
// binomial proportion, plus half a request for the discreteness. z = 5 fails
// a correct split about once in 1.7 million checks.
func Tolerance(n int, p, z float64) float64 {
	if n <= 0 {
		return 1
	}
	return z*math.Sqrt(p*(1-p)/float64(n)) + 0.5/float64(n)
}
