package utils

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Channels is a local HTTP server standing in for the APIs notifications go
// to, so that tests drive the real clients (slack-go through the
// notifications engine, the engine's Teams and webhook services) against it:
//
//	/slack/api/chat.postMessage   Slack's Web API (point the service's apiURL at URL+"/slack/api/")
//	/teams/<name>                 a Teams Office 365 connector webhook (answers "1")
//	/workflows/<name>             a Teams Workflows webhook (answers 202)
//	/hooks/<name>                 a generic webhook (answers 200)
//
// Fail makes a path fail with a status code until Recover; Hang makes it
// hold requests until Recover. Every request is recorded, failed or not.
type Channels struct {
	URL string

	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []ChannelRequest
	failing map[string]int
	hanging map[string]chan struct{}
	held    map[string]int // requests a hanging path holds now
}

// ChannelRequest is one request a channel received.
type ChannelRequest struct {
	Path   string
	Header http.Header
	Body   []byte
	// Form is the decoded form of Slack's form-encoded calls.
	Form url.Values
	// Code is what the channel answered.
	Code int
	At   time.Time
}

// JSON decodes the body into v.
func (r ChannelRequest) JSON(v any) error { return json.Unmarshal(r.Body, v) }

// StartChannels starts the stand-in on a loopback port.
func StartChannels() *Channels {
	c := &Channels{failing: map[string]int{}, hanging: map[string]chan struct{}{}, held: map[string]int{}}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	c.URL = c.srv.URL
	return c
}

// Close stops the server, releasing hung requests first.
func (c *Channels) Close() {
	c.mu.Lock()
	for p, ch := range c.hanging {
		close(ch)
		delete(c.hanging, p)
	}
	c.mu.Unlock()
	c.srv.CloseClientConnections()
	c.srv.Close()
}

// Fail makes requests to path answer code until Recover.
func (c *Channels) Fail(path string, code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failing[path] = code
}

// Hang makes requests to path wait, unanswered, until Recover.
func (c *Channels) Hang(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.hanging[path]; !ok {
		c.hanging[path] = make(chan struct{})
	}
}

// Recover makes path answer normally again.
func (c *Channels) Recover(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.failing, path)
	if ch, ok := c.hanging[path]; ok {
		close(ch)
		delete(c.hanging, path)
	}
}

// Hanging returns how many requests to path are held (unanswered) now.
func (c *Channels) Hanging(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[path]
}

// Requests returns the requests received on path (every path when empty).
func (c *Channels) Requests(path string) []ChannelRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []ChannelRequest
	for _, r := range c.reqs {
		if path == "" || r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// Delivered returns the requests on path that the channel accepted.
func (c *Channels) Delivered(path string) []ChannelRequest {
	var out []ChannelRequest
	for _, r := range c.Requests(path) {
		if r.Code < 300 {
			out = append(out, r)
		}
	}
	return out
}

func (c *Channels) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := ChannelRequest{Path: r.URL.Path, Header: r.Header.Clone(), Body: body, At: time.Now()}
	if strings.Contains(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		req.Form, _ = url.ParseQuery(string(body))
	}
	c.mu.Lock()
	hang := c.hanging[r.URL.Path]
	code, fail := c.failing[r.URL.Path]
	if hang != nil {
		c.held[r.URL.Path]++
	}
	c.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		c.mu.Lock()
		c.held[r.URL.Path]--
		c.mu.Unlock()
		if r.Context().Err() != nil {
			return
		}
	}
	record := func(code int) {
		req.Code = code
		c.mu.Lock()
		c.reqs = append(c.reqs, req)
		c.mu.Unlock()
	}
	if fail {
		record(code)
		http.Error(w, "failing on purpose", code)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/slack/api/"):
		record(http.StatusOK)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok": true, "channel": "C0123", "ts": "1715000000.000100"}`)
	case strings.HasPrefix(r.URL.Path, "/teams/"):
		record(http.StatusOK)
		_, _ = io.WriteString(w, "1")
	case strings.HasPrefix(r.URL.Path, "/workflows/"):
		record(http.StatusAccepted)
		w.WriteHeader(http.StatusAccepted)
	case strings.HasPrefix(r.URL.Path, "/hooks/"):
		record(http.StatusOK)
	default:
		record(http.StatusNotFound)
		http.NotFound(w, r)
	}
}
