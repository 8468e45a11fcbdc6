package cli

import (
	"context"
	"sort"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// getExperiment reads one experiment; a missing one is exit code 3.
func getExperiment(ctx context.Context, c client.Client, namespace, name string) (*cxv1.CXExperiment, error) {
	exp := &cxv1.CXExperiment{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, exp); err != nil {
		return nil, experimentError(err, namespace, name)
	}
	return exp, nil
}

// eventSelector selects the events.k8s.io Events about one experiment.
func eventSelector(name string) fields.Selector {
	return fields.SelectorFromSet(fields.Set{"regarding.name": name, "regarding.kind": "CXExperiment"})
}

// experimentEvents lists the events.k8s.io/v1 Events whose regarding is the
// experiment, oldest first. Events of an earlier object of the same name (by
// UID) are left out. Reading events is best effort: a user allowed to read
// experiments but not events still gets the rest of the view, and err says why
// the events are missing.
func experimentEvents(ctx context.Context, c client.Client, exp *cxv1.CXExperiment) ([]eventsv1.Event, error) {
	list := &eventsv1.EventList{}
	err := c.List(ctx, list, client.InNamespace(exp.Namespace), client.MatchingFieldsSelector{Selector: eventSelector(exp.Name)})
	if apierrors.IsBadRequest(err) { // a server that cannot select on regarding: filter here
		err = c.List(ctx, list, client.InNamespace(exp.Namespace))
	}
	if err != nil {
		return nil, err
	}
	return filterEvents(list.Items, exp), nil
}

// filterEvents keeps the events about exp and sorts them oldest first.
func filterEvents(items []eventsv1.Event, exp *cxv1.CXExperiment) []eventsv1.Event {
	var out []eventsv1.Event
	for _, e := range items {
		r := e.Regarding
		if r.Kind != "CXExperiment" || r.Name != exp.Name || (r.Namespace != "" && r.Namespace != exp.Namespace) {
			continue
		}
		if r.UID != "" && exp.UID != "" && r.UID != exp.UID {
			continue
		}
		out = append(out, e)
	}
	sortEvents(out)
	return out
}

// eventTime is when an event (or the last of its series) was observed.
func eventTime(e *eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

// sortEvents orders events oldest first (ties by name, for stable output).
func sortEvents(evs []eventsv1.Event) {
	sort.SliceStable(evs, func(i, j int) bool {
		ti, tj := eventTime(&evs[i]), eventTime(&evs[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return evs[i].Name < evs[j].Name
	})
}

// lastEvents returns the newest n events, still oldest first.
func lastEvents(evs []eventsv1.Event, n int) []eventsv1.Event {
	if n >= 0 && len(evs) > n {
		return evs[len(evs)-n:]
	}
	return evs
}

// withTypeMeta sets the type meta the typed client drops; kubectl's printers
// need it (and leave managedFields out of json and yaml unless
// --show-managed-fields).
func withTypeMeta(exp *cxv1.CXExperiment) *cxv1.CXExperiment {
	out := exp.DeepCopy()
	out.APIVersion = cxv1.GroupVersion.String()
	out.Kind = "CXExperiment"
	return out
}
