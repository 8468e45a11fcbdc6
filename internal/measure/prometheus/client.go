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
	switch {
	case ctx.Err() != nil:
		// The caller gave up; say so rather than blaming the server.
		return nil, fmt.Errorf("cancelled: %w", context.Cause(ctx))
	case errors.Is(err, context.DeadlineExceeded) || qctx.Err() != nil:
		return nil, fmt.Errorf("no answer within the timeout of %s (spec.prometheus.timeout): %w", c.timeout, context.DeadlineExceeded)
	}
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		return nil, describeAPIError(apiErr)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// "Post http://...: dial tcp ...: connection refused": keep the cause only,
		// the caller's message names the address.
		return nil, fmt.Errorf("cannot reach the server: %w", uerr.Err)
	}
	return nil, fmt.Errorf("request failed: %w", err)
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
