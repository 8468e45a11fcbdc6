package collector

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// statusInterval is how often the collector writes what it saw to the
// FeedbackSources' status: at most one write per source per interval, so a
// busy webhook costs the API server a write every few seconds, not one per
// event.
const statusInterval = 3 * time.Second

// statusReporter records, per FeedbackSource, the last accepted event and
// the last rejection, and writes them to status.lastAcceptedAt and
// status.lastError with merge patches (no conflicts between replicas: each
// field is a "last" value). One loop per collector, started by Serve.
type statusReporter struct {
	client client.Client
	log    interface {
		Error(err error, msg string, kv ...any)
	}

	mu      sync.Mutex
	pending map[types.NamespacedName]*sourceUpdate
}

type sourceUpdate struct {
	acceptedAt time.Time
	lastError  *cxv1.FeedbackSourceError
}

func (r *statusReporter) update(nn types.NamespacedName) *sourceUpdate {
	if r.pending == nil {
		r.pending = map[types.NamespacedName]*sourceUpdate{}
	}
	u := r.pending[nn]
	if u == nil {
		u = &sourceUpdate{}
		r.pending[nn] = u
	}
	return u
}

func (r *statusReporter) accepted(nn types.NamespacedName, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.update(nn).acceptedAt = at
}

func (r *statusReporter) rejected(nn types.NamespacedName, reason string, code int, message string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A message can quote what the request sent: status keeps its first
	// KiB (the whole is in the answer and the log).
	r.update(nn).lastError = &cxv1.FeedbackSourceError{At: metav1.NewTime(at), Reason: reason, Code: int32(code), Message: clipTo(message, 1024)}
}

// run flushes every statusInterval until ctx is done, then once more.
func (r *statusReporter) run(ctx context.Context) {
	t := time.NewTicker(statusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			r.flush(fctx)
			cancel()
			return
		case <-t.C:
			r.flush(ctx)
		}
	}
}

// flush writes the pending updates; a failed write is dropped (the next
// event records a fresh one).
func (r *statusReporter) flush(ctx context.Context) {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	for nn, u := range pending {
		st := map[string]any{}
		if !u.acceptedAt.IsZero() {
			st["lastAcceptedAt"] = metav1.NewTime(u.acceptedAt)
		}
		if u.lastError != nil {
			st["lastError"] = u.lastError
		}
		body, err := json.Marshal(map[string]any{"status": st})
		if err != nil {
			continue
		}
		obj := &cxv1.FeedbackSource{ObjectMeta: metav1.ObjectMeta{Namespace: nn.Namespace, Name: nn.Name}}
		if err := r.client.Status().Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err != nil && r.log != nil {
			r.log.Error(err, "recording a FeedbackSource's last event in its status", "namespace", nn.Namespace, "name", nn.Name)
		}
	}
}
