package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rapport-dev/rapport/internal/notify"
)

// The demo subscribes a signed webhook of its own to the experiment's
// rollbacks (rapport-notifications-cm in the shop's namespace) and prints,
// at the end, the notification Rapport sent: what a team's Slack, Teams or
// audit webhook would get.

// notification is the part of Rapport's webhook document the demo prints.
type notification struct {
	ID        string `json:"id"`
	Trigger   string `json:"trigger"`
	Segment   string `json:"segment"`
	Variant   string `json:"variant"`
	Reason    string `json:"reason"`
	Responses int64  `json:"responses"`
	Message   string `json:"message"`
}

// receiver is a local webhook receiver that checks Rapport's signature.
type receiver struct {
	url string
	key []byte
	srv *http.Server

	mu       sync.Mutex
	got      []notification
	rejected int
	arrived  chan struct{}
}

func startReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	key := []byte(hex.EncodeToString(raw)) // the Secret's value, as the notifier uses it
	r := &receiver{url: "http://" + l.Addr().String() + "/rapport", key: key, arrived: make(chan struct{}, 16)}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var n notification
	if !validSignature(r.key, body, req.Header.Get(notify.HeaderSignature)) || json.Unmarshal(body, &n) != nil {
		r.mu.Lock()
		r.rejected++
		r.mu.Unlock()
		http.Error(w, "bad signature or body", http.StatusUnauthorized)
		return
	}
	r.mu.Lock()
	seen := false
	for _, g := range r.got {
		seen = seen || g.ID == n.ID // delivery is at least once: deduplicate on the id
	}
	if !seen {
		r.got = append(r.got, n)
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// validSignature checks Rapport's "sha256=<hex HMAC-SHA256 of the body>"
// header in constant time.
func validSignature(key, body []byte, header string) bool {
	return hmac.Equal([]byte(header), []byte(notify.Sign(key, body)))
}

// subscribe points the namespace's notifications at the receiver: rollbacks
// of the experiment, signed with the receiver's key.
func (d *demo) subscribe(ctx context.Context, r *receiver) error {
	secret := &corev1.Secret{ObjectMeta: objectMeta("rapport-notifications-secret"), StringData: map[string]string{"demo-hmac": string(r.key)}}
	cm := &corev1.ConfigMap{ObjectMeta: objectMeta("rapport-notifications-cm"), Data: map[string]string{
		"service.webhook.demo": fmt.Sprintf("url: %s\nsignature:\n  secret: $demo-hmac\n", r.url),
		"subscriptions":        "- recipients: [demo]\n  triggers: [on-rolled-back]\n",
	}}
	for _, o := range []client.Object{secret, cm} {
		o.SetNamespace(demoNS)
		if err := d.c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	return nil
}

// wait returns the notifications received once there are at least n, or
// what arrived when the timeout passes.
func (r *receiver) wait(n int, timeout time.Duration) ([]notification, int) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		got, rejected := append([]notification(nil), r.got...), r.rejected
		r.mu.Unlock()
		if len(got) >= n {
			return got, rejected
		}
		select {
		case <-r.arrived:
		case <-deadline.C:
			return got, rejected
		}
	}
}

func (r *receiver) stop() { _ = r.srv.Close() }
