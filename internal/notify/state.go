package notify

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/argoproj/notifications-engine/pkg/services"
)

// State is what the notifier remembers about one experiment: the events it
// took on and, for each, a delivery per destination. It is persisted in a
// ConfigMap of the experiment's namespace (see StateName), so that a restart
// or a change of leader neither loses nor repeats a notification.
type State struct {
	// Events by Event.ID.
	Events map[string]*EventState `json:"events"`
}

// EventState is one event taken on.
type EventState struct {
	// Event is kept whole, so that it can be delivered even after the status
	// moved on (a retry starts a new run and clears the rollbacks).
	Event Event `json:"event"`
	// At is when the event happened (or was first seen, when the status
	// records no time for it); deliveries are retried until At + max age.
	At         time.Time   `json:"at"`
	Deliveries []*Delivery `json:"deliveries"`
}

// Delivery is one event to one destination.
type Delivery struct {
	Service   string `json:"service"`
	Recipient string `json:"recipient,omitempty"`
	// DeliveredAt is set once the channel accepted it.
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	// Attempts counts failed attempts; NextAttempt is when to try again.
	Attempts    int        `json:"attempts,omitempty"`
	NextAttempt *time.Time `json:"nextAttempt,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	// DroppedAt is set when the event grew older than the max age
	// undelivered: the notifier stops trying.
	DroppedAt *time.Time `json:"droppedAt,omitempty"`
}

// Destination is the engine's (service, recipient) of this delivery.
func (d *Delivery) Destination() services.Destination {
	return services.Destination{Service: d.Service, Recipient: d.Recipient}
}

// Done reports whether nothing is left to do for the delivery.
func (d *Delivery) Done() bool { return d.DeliveredAt != nil || d.DroppedAt != nil }

// Backoff of failed deliveries: base, 2 base, 4 base ... at most backoffMax.
const (
	DefaultRetryBase = 2 * time.Second
	backoffMax       = 5 * time.Minute
)

// backoff is the wait after the n-th failed attempt (n >= 1).
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// Failed records a failed attempt at now; the next is after backoff.
func (d *Delivery) Failed(now time.Time, base time.Duration, err error) {
	d.Attempts++
	next := now.Add(backoff(base, d.Attempts))
	d.NextAttempt = &next
	d.LastError = clip(err.Error(), 512)
}

// Delivered records a delivery at now.
func (d *Delivery) Delivered(now time.Time) {
	d.DeliveredAt, d.NextAttempt, d.LastError = &now, nil, ""
}

// Due reports whether the delivery should be attempted at now.
func (d *Delivery) Due(now time.Time) bool {
	return !d.Done() && (d.NextAttempt == nil || !now.Before(*d.NextAttempt))
}

// Add takes on an event with its destinations; false when it is already
// known. Events without destinations are not remembered: nobody listens.
func (s *State) Add(e Event, at time.Time, dests []services.Destination) bool {
	if _, ok := s.Events[e.ID]; ok || len(dests) == 0 {
		return false
	}
	if s.Events == nil {
		s.Events = map[string]*EventState{}
	}
	es := &EventState{Event: e, At: at}
	for _, d := range dests {
		es.Deliveries = append(es.Deliveries, &Delivery{Service: d.Service, Recipient: d.Recipient})
	}
	s.Events[e.ID] = es
	return true
}

// Prune forgets events done and older than before; an event older than the
// max age is never taken on again, so forgetting it repeats nothing.
func (s *State) Prune(before time.Time) bool {
	changed := false
	for id, es := range s.Events {
		done := true
		for _, d := range es.Deliveries {
			done = done && d.Done()
		}
		if done && es.At.Before(before) {
			delete(s.Events, id)
			changed = true
		}
	}
	return changed
}

// NextAttempt is the earliest retry among pending deliveries, zero if none.
func (s *State) NextAttempt() time.Time {
	var next time.Time
	for _, es := range s.Events {
		for _, d := range es.Deliveries {
			if d.Done() || d.NextAttempt == nil {
				continue
			}
			if next.IsZero() || d.NextAttempt.Before(next) {
				next = *d.NextAttempt
			}
		}
	}
	return next
}

// IDs returns the event IDs in a stable order (oldest first).
func (s *State) IDs() []string {
	ids := make([]string, 0, len(s.Events))
	for id := range s.Events {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := s.Events[ids[i]], s.Events[ids[j]]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		return ids[i] < ids[j]
	})
	return ids
}

// stateKey is the ConfigMap data key holding the state.
const stateKey = "state.json"

// encodeState and decodeState convert the state to and from its ConfigMap form.
func encodeState(s *State) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

func decodeState(data string) (*State, error) {
	s := &State{Events: map[string]*EventState{}}
	if data == "" {
		return s, nil
	}
	if err := json.Unmarshal([]byte(data), s); err != nil {
		return nil, fmt.Errorf("decode notification state: %w", err)
	}
	if s.Events == nil {
		s.Events = map[string]*EventState{}
	}
	return s, nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
