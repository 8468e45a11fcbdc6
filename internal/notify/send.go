package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/argoproj/notifications-engine/pkg/services"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Headers of every webhook and teams-workflows request, so receivers can
// deduplicate (delivery is at least once) and verify.
const (
	HeaderEvent     = "X-Rapport-Event"
	HeaderTrigger   = "X-Rapport-Trigger"
	HeaderSignature = "X-Rapport-Signature-256"
)

// errTimeout is returned when a channel does not answer in time.
var errTimeout = errors.New("the channel did not answer in time")

// send formats e for d's service and sends it, within timeout.
func (c *configs) send(ctx context.Context, exp *cxv1.CXExperiment, e Event, at time.Time, d services.Destination, timeout time.Duration) error {
	cfg := c.service(d.Service)
	if cfg == nil {
		return fmt.Errorf("no service %q in %s of namespace %s or of the manager's namespace; define service.<type>.%s there", d.Service, ConfigMapName, exp.Namespace, d.Service)
	}
	reportURL, err := c.reportURL(e)
	if err != nil {
		return err
	}
	vars, err := templateVars(exp, e, at, reportURL)
	if err != nil {
		return err
	}
	vars["serviceType"], vars["recipient"] = cfg.kinds[d.Service], d.Recipient
	n, err := cfg.templates.FormatNotification(vars, templateName(e.Trigger))
	if err != nil {
		return fmt.Errorf("format template %s: %w", templateName(e.Trigger), err)
	}
	if w, ok := cfg.webhooks[d.Service]; ok {
		body := n.Message
		if wn, ok := n.Webhook[d.Service]; ok {
			body = wn.Body
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return postWebhook(ctx, w, []byte(body), e)
	}
	// The engine's services take no context and set no timeouts: a call
	// that outlives timeout is given up (its goroutine ends when the channel
	// answers or the connection dies) and counted as failed.
	svc := cfg.services[d.Service]
	done := make(chan error, 1)
	go func() { done <- svc.Send(*n, d) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return fmt.Errorf("%w (%s)", errTimeout, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// webhookClients: one for verified TLS, one for insecureSkipVerify.
var (
	webhookClient         = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	webhookClientInsecure = func() *http.Client {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opted into per service by insecureSkipVerify
		return &http.Client{Transport: t}
	}()
)

// postWebhook POSTs body with the service's headers, the event's and, when
// configured, the HMAC-SHA256 signature of the exact bytes sent. Any 2xx is
// delivered. Errors never contain the URL, which may carry a credential.
func postWebhook(ctx context.Context, w webhookOptions, body []byte, e Event) error {
	if w.err != nil {
		return w.err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("cannot build the request; check the service's url")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "rapport-notifications")
	for _, h := range w.Headers {
		req.Header.Set(h.Name, h.Value)
	}
	req.Header.Set(HeaderEvent, e.ID)
	req.Header.Set(HeaderTrigger, string(e.Trigger))
	if w.BasicAuth != nil {
		req.SetBasicAuth(w.BasicAuth.Username, w.BasicAuth.Password)
	}
	if w.Signature != nil {
		header := w.Signature.Header
		if header == "" {
			header = HeaderSignature
		}
		req.Header.Set(header, Sign([]byte(w.Signature.Secret), body))
	}
	client := webhookClient
	if w.InsecureSkipVerify {
		client = webhookClientInsecure
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %v", errTimeout, ctx.Err())
		}
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap() // drop the URL url.Error puts in front
		}
		return fmt.Errorf("post to %s: %w", req.URL.Host, err)
	}
	defer func() { _ = resp.Body.Close() }()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post to %s: %s: %s", req.URL.Host, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// Sign is the signature header value of body under key: "sha256=" and the
// hex HMAC-SHA256, as GitHub signs its webhooks. Receivers compute the same
// over the raw body and compare in constant time (hmac.Equal).
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
