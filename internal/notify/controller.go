package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// RBAC of the notifier; `make manifests` collects these markers. It reads
// experiments (never writes them), reads the notification ConfigMaps and
// Secrets by name, and keeps its delivery state in ConfigMaps it owns.
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=cxexperiments,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;create;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Defaults of Notifier.
const (
	DefaultMaxAge  = 6 * time.Hour
	DefaultTimeout = 30 * time.Second
	// ControllerName names the controller in logs and controller-runtime's metrics.
	ControllerName = "notifications"
	// LabelState marks the ConfigMaps holding delivery state.
	LabelState = "cx.rapport.dev/notification-state"
)

// apiQPS and apiBurst bound the notifier's own API client: its reads of
// configuration and state and its writes never take from the client-side
// rate budget of the experiment controller (a leader taking over many
// experiments must not delay rollbacks for notifications).
const (
	apiQPS   = 5
	apiBurst = 10
)

// Notifier delivers the events of experiments (Events) to the subscribed
// channels. It runs as its own controller, on the leader only, apart from the
// experiment controller: a channel that is slow or down delays notifications,
// never a rollback, and the notifier never writes an experiment. What it
// delivered is kept in a ConfigMap per experiment (StateName), so that a
// restart or a new leader neither loses nor repeats a notification.
type Notifier struct {
	// Client reads experiments (the manager's cache) and writes state
	// ConfigMaps. Default: experiments from the manager's cache, writes
	// through a client of the notifier's own (apiQPS).
	Client client.Client
	// APIReader reads the configuration and the state uncached: the state
	// must be what the last write left, never an older cached copy.
	// Default: the notifier's own client.
	APIReader client.Reader
	// Namespace holds the global configuration (rapport-notifications-cm and
	// -secret for every experiment); "" for none.
	Namespace string
	// MaxAge: an event older than this when first seen is not sent, and an
	// undelivered one is retried until it is this old (default 6h).
	MaxAge time.Duration
	// Timeout bounds one delivery attempt (default 30s).
	Timeout time.Duration
	// RetryBase is the wait after a first failed attempt, doubled after each
	// further one up to 5 minutes (default 2s).
	RetryBase time.Duration
	// Clock defaults to the real clock.
	Clock clock.PassiveClock
	// Recorder records a Warning on the experiment when a notification is
	// given up; optional.
	Recorder events.EventRecorder
	// MaxConcurrentReconciles: experiments handled in parallel (default 2).
	MaxConcurrentReconciles int

	mu      sync.Mutex
	entries map[types.NamespacedName]*entry
}

// entry is what the notifier holds in memory for one experiment while it
// leads: the state as last read or written (so that a stale cache can never
// make it repeat a delivery) and the events nobody subscribed to.
type entry struct {
	uid     types.UID
	state   *State
	cm      *corev1.ConfigMap // nil while no state ConfigMap exists
	ignored map[string]bool
}

// SetupWithManager registers the notifier as a controller of mgr.
func (n *Notifier) SetupWithManager(mgr ctrl.Manager) error {
	if n.Client == nil || n.APIReader == nil {
		cfg := rest.CopyConfig(mgr.GetConfig())
		cfg.QPS, cfg.Burst = apiQPS, apiBurst
		own, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
			Cache: &client.CacheOptions{Reader: mgr.GetCache(), DisableFor: []client.Object{&corev1.ConfigMap{}, &corev1.Secret{}}}})
		if err != nil {
			return fmt.Errorf("notifier API client: %w", err)
		}
		if n.Client == nil {
			n.Client = own
		}
		if n.APIReader == nil {
			n.APIReader = own
		}
	}
	if n.MaxAge <= 0 {
		n.MaxAge = DefaultMaxAge
	}
	if n.Timeout <= 0 {
		n.Timeout = DefaultTimeout
	}
	if n.RetryBase <= 0 {
		n.RetryBase = DefaultRetryBase
	}
	if n.Clock == nil {
		n.Clock = clock.RealClock{}
	}
	if n.MaxConcurrentReconciles <= 0 {
		n.MaxConcurrentReconciles = 2
	}
	n.entries = map[types.NamespacedName]*entry{}
	return ctrl.NewControllerManagedBy(mgr).
		Named(ControllerName).
		For(&cxv1.CXExperiment{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: n.MaxConcurrentReconciles}).
		Complete(n)
}

// Reconcile takes on the new events of one experiment and attempts the
// deliveries that are due.
func (n *Notifier) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	exp := &cxv1.CXExperiment{}
	if err := n.Client.Get(ctx, req.NamespacedName, exp); err != nil {
		if apierrors.IsNotFound(err) {
			n.forget(req.NamespacedName) // its state ConfigMap goes with it (ownerReference)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	now := n.Clock.Now()
	evs := recent(Events(exp), now, n.MaxAge)
	if len(evs) == 0 && !n.known(req.NamespacedName, exp.UID) {
		// Nothing recent to tell and nothing pending in memory: no need to
		// read the state (a new leader does not GET one per experiment).
		return ctrl.Result{}, nil
	}
	ent, err := n.entry(ctx, exp)
	if err != nil {
		return ctrl.Result{}, err
	}
	p := &pass{n: n, ctx: ctx, log: ctrl.LoggerFrom(ctx), exp: exp, ent: ent, now: now}
	if err := p.takeOn(evs); err != nil {
		return ctrl.Result{}, err
	}
	if err := p.deliver(); err != nil {
		return ctrl.Result{}, err
	}
	if ent.state.Prune(now.Add(-n.MaxAge - time.Hour)) {
		p.changed = true
	}
	if p.changed {
		p.failed = errors.Join(p.failed, n.save(ctx, exp, ent))
	}
	if p.failed != nil {
		return ctrl.Result{}, p.failed
	}
	if next := ent.state.NextAttempt(); !next.IsZero() {
		return ctrl.Result{RequeueAfter: max(next.Sub(now), time.Second)}, nil
	}
	return ctrl.Result{}, nil
}

// pass is one reconcile of one experiment.
type pass struct {
	n   *Notifier
	ctx context.Context
	log logr.Logger
	exp *cxv1.CXExperiment
	ent *entry
	now time.Time
	// cfgs is read once, when first needed.
	cfgs *configs
	// changed: the state has changes not yet written; failed: writes that failed.
	changed bool
	failed  error
}

func (p *pass) config() (*configs, error) {
	if p.cfgs == nil {
		c, err := loadConfigs(p.ctx, p.n.APIReader, p.exp.Namespace, p.n.Namespace)
		if err != nil {
			return nil, err
		}
		for _, w := range c.warnings() {
			p.log.Info("notification configuration", "warning", w)
		}
		p.cfgs = c
	}
	return p.cfgs, nil
}

// takeOn records the events not seen before with their subscribers, as they
// are now; events nobody subscribed to are remembered in memory only.
func (p *pass) takeOn(evs []Event) error {
	for _, e := range evs {
		if _, known := p.ent.state.Events[e.ID]; known || p.ent.ignored[e.ID] {
			continue
		}
		at := e.At
		if at.IsZero() {
			at = p.now
		}
		c, err := p.config()
		if err != nil {
			return err
		}
		if p.ent.state.Add(e, at, c.destinations(p.exp, e.Trigger)) {
			p.changed = true
			p.log.V(1).Info("notification event", "event", e.ID, "trigger", e.Trigger, "destinations", len(p.ent.state.Events[e.ID].Deliveries))
		} else {
			p.ent.ignored[e.ID] = true
		}
	}
	return nil
}

// deliver attempts every delivery that is due, oldest event first, and
// gives up those whose event is older than the max age.
func (p *pass) deliver() error {
	for _, id := range p.ent.state.IDs() {
		es := p.ent.state.Events[id]
		for _, d := range es.Deliveries {
			if !d.Due(p.now) {
				continue
			}
			if p.now.Sub(es.At) > p.n.MaxAge {
				p.drop(id, es, d)
				continue
			}
			c, err := p.config()
			if err != nil {
				return err
			}
			labels := []string{string(es.Event.Trigger), d.Service}
			if err := c.send(p.ctx, p.exp, es.Event, es.At, d.Destination(), p.n.Timeout); err != nil {
				if p.ctx.Err() != nil {
					return p.ctx.Err()
				}
				d.Failed(p.now, p.n.RetryBase, err)
				p.changed = true
				metrics.NotificationsFailed.WithLabelValues(labels...).Inc()
				p.log.Info("notification failed; will retry", "event", id, "trigger", es.Event.Trigger, "service", d.Service,
					"recipient", d.Recipient, "attempts", d.Attempts, "retryAt", d.NextAttempt, "error", err.Error())
				continue
			}
			d.Delivered(p.now)
			metrics.NotificationsSent.WithLabelValues(labels...).Inc()
			p.log.Info("notification sent", "event", id, "trigger", es.Event.Trigger, "service", d.Service, "recipient", d.Recipient)
			// Remember each delivery at once: a crash now repeats at most
			// the delivery in flight.
			p.failed = errors.Join(p.failed, p.n.save(p.ctx, p.exp, p.ent))
			p.changed = false
		}
	}
	return nil
}

// drop gives a delivery up: counted, logged, and a Warning on the experiment.
func (p *pass) drop(id string, es *EventState, d *Delivery) {
	d.DroppedAt, p.changed = &p.now, true
	metrics.NotificationsDropped.WithLabelValues(string(es.Event.Trigger), d.Service).Inc()
	p.log.Info("notification given up", "event", id, "trigger", es.Event.Trigger, "service", d.Service, "attempts", d.Attempts, "lastError", d.LastError)
	if p.n.Recorder != nil {
		p.n.Recorder.Eventf(p.exp, nil, corev1.EventTypeWarning, "NotificationDropped", "NotificationDropped",
			"%s notification to %s given up after %d attempts in %s: %s", es.Event.Trigger, d.Service, d.Attempts, p.n.MaxAge, d.LastError)
	}
}

// recent keeps the events that happened within maxAge of now (or whose
// time the status does not record): older ones are never sent.
func recent(evs []Event, now time.Time, maxAge time.Duration) []Event {
	var out []Event
	for _, e := range evs {
		if e.At.IsZero() || now.Sub(e.At) <= maxAge {
			out = append(out, e)
		}
	}
	return out
}

// known reports whether the notifier holds state for the experiment in
// memory (it may have deliveries pending).
func (n *Notifier) known(key types.NamespacedName, uid types.UID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.entries[key]
	return e != nil && e.uid == uid && len(e.state.Events) > 0
}

func (n *Notifier) forget(key types.NamespacedName) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.entries, key)
}

// entry returns what the notifier holds for exp, reading the state
// ConfigMap from the API server the first time (and for a new experiment
// of the same name).
func (n *Notifier) entry(ctx context.Context, exp *cxv1.CXExperiment) (*entry, error) {
	key := client.ObjectKeyFromObject(exp)
	n.mu.Lock()
	ent := n.entries[key]
	n.mu.Unlock()
	if ent != nil && ent.uid == exp.UID {
		return ent, nil
	}
	ent = &entry{uid: exp.UID, state: &State{Events: map[string]*EventState{}}, ignored: map[string]bool{}}
	cm := &corev1.ConfigMap{}
	err := n.APIReader.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: StateName(exp.Name)}, cm)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, fmt.Errorf("read notification state %s/%s: %w", exp.Namespace, StateName(exp.Name), err)
	default:
		ent.cm = cm
		if metav1.IsControlledBy(cm, exp) {
			st, err := decodeState(cm.Data[stateKey])
			if err != nil {
				return nil, err
			}
			ent.state = st
		} // else: left by an earlier experiment of the same name; taken over at the next write
	}
	n.mu.Lock()
	n.entries[key] = ent
	n.mu.Unlock()
	return ent, nil
}

// save writes the state ConfigMap, owned by the experiment so that it goes
// with it. Only the leader writes it; a conflict means another writer, so
// the state is read again at the next reconcile.
func (n *Notifier) save(ctx context.Context, exp *cxv1.CXExperiment, ent *entry) error {
	data, err := encodeState(ent.state)
	if err != nil {
		return err
	}
	cm := ent.cm
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: exp.Namespace, Name: StateName(exp.Name)}}
	} else {
		cm = cm.DeepCopy()
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	cm.Labels[LabelState] = "true"
	cm.Labels[cxv1.LabelManagedBy] = "rapport"
	cm.OwnerReferences = nil
	if err := controllerutil.SetControllerReference(exp, cm, n.Client.Scheme()); err != nil {
		return err
	}
	cm.Data = map[string]string{stateKey: data}
	if ent.cm == nil {
		err = n.Client.Create(ctx, cm)
	} else {
		err = n.Client.Update(ctx, cm)
	}
	if err != nil {
		n.forget(client.ObjectKeyFromObject(exp))
		return fmt.Errorf("write notification state %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	ent.cm = cm
	return nil
}

// StateName is the name of the ConfigMap holding the notification state of
// experiment name: "<name>-notifications", shortened with a hash when it
// would exceed the 253 characters of a name.
func StateName(name string) string {
	const suffix = "-notifications"
	if len(name)+len(suffix) <= 253 {
		return name + suffix
	}
	h := sha256.Sum256([]byte(name))
	keep := 253 - len(suffix) - 9
	return name[:keep] + "-" + hex.EncodeToString(h[:4]) + suffix
}
