package prometheus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// DefaultTimeout bounds a query when PrometheusQuery.Timeout is unset.
const DefaultTimeout = 10 * time.Second

// bearerAuth adds an Authorization header to every request.
type bearerAuth struct {
	token string
	next  http.RoundTripper
}

func (b *bearerAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	// A RoundTripper must not modify the caller's request.
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// client runs instant queries against one Prometheus API.
type client struct {
	address string
	api     promv1.API
	timeout time.Duration
	// now is the evaluation time of instant queries.
	now func() time.Time
}

// newClient checks the address and returns a client sending bearerToken when
// it is not empty. base is the transport (nil: the client library's default).
func newClient(q cxv1.PrometheusQuery, bearerToken string, base http.RoundTripper) (*client, error) {
	u, err := url.Parse(q.Address)
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", q.Address, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus address %q: want an http:// or https:// URL, e.g. http://prometheus.monitoring:9090", q.Address)
	}
	if base == nil {
		base = api.DefaultRoundTripper
	}
	rt := base
	if token := strings.TrimSpace(bearerToken); token != "" {
		rt = &bearerAuth{token: token, next: base}
	}
	c, err := api.NewClient(api.Config{Address: q.Address, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w", q.Address, err)
	}
	timeout := DefaultTimeout
	if q.Timeout != nil && q.Timeout.Duration > 0 {
		timeout = q.Timeout.Duration
	}
	return &client{address: q.Address, api: promv1.NewAPI(c), timeout: timeout, now: time.Now}, nil
}

// query runs an instant query at at (zero: now), bounded by the client's
// timeout.
// Warnings of the server are ignored: they do not change the result.
func (c *client) query(ctx context.Context, promql string, at time.Time) (model.Value, error) {
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if at.IsZero() {
		at = c.now()
	}
	v, _, _, err := c.api.Query(qctx, promql, at, promv1.WithTimeout(c.timeout))
	if err == nil {
		return v, nil
	}
	var callerGaveUp error
	if ctx.Err() != nil {
		callerGaveUp = context.Cause(ctx)
	}
	return nil, queryError(err, callerGaveUp, c.timeout)
}

// queryError describes a failed query. It classifies err by what it is, not
// by the state of the query's own context afterwards: a sibling query of
// Tallies may cancel the caller's context at any moment, and an answer the
// server already gave must not be reported as a timeout or a cancellation.
// callerGaveUp is the cause of the caller's context when it is done.
func queryError(err, callerGaveUp error, timeout time.Duration) error {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		return describeAPIError(apiErr)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if callerGaveUp != nil {
			// The caller gave up; say so rather than blaming the server.
			return fmt.Errorf("cancelled: %w", callerGaveUp)
		}
		return fmt.Errorf("no answer within the timeout of %s (spec.prometheus.timeout): %w", timeout, context.DeadlineExceeded)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// "Post http://...: dial tcp ...: connection refused": keep the cause only,
		// the caller's message names the address.
		return fmt.Errorf("cannot reach the server: %w", uerr.Err)
	}
	return fmt.Errorf("request failed: %w", err)
}

// describeAPIError adds what the server said to an HTTP or API error.
func describeAPIError(e *promv1.Error) error {
	hint := ""
	switch {
	case strings.Contains(e.Msg, ": 401"), strings.Contains(e.Msg, ": 403"):
		hint = " (check bearerTokenSecretRef)"
	case e.Type == promv1.ErrBadData:
		hint = " (the server refused the query)"
	}
	detail := strings.Join(strings.Fields(e.Detail), " ")
	if detail != "" {
		return fmt.Errorf("%w%s: server said %q", e, hint, truncate(detail, 200))
	}
	return fmt.Errorf("%w%s", e, hint)
}
