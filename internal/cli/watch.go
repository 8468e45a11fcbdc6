package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// clearScreen moves the cursor home and clears the terminal.
const clearScreen = "\x1b[H\x1b[2J"

// blockSeparator separates the views status --watch prints when stdout is
// not a terminal.
const blockSeparator = "---"

// statusWatcher follows one experiment and its events through watches and
// shows the status view each time what it shows changes.
type statusWatcher struct {
	o         *Options
	c         client.WithWatch
	ns, name  string
	maxEvents int

	expW, evW watch.Interface
	exp       *cxv1.CXExperiment
	expRV     string
	events    map[string]eventsv1.Event // by namespace/name
	eventsRV  string
	last      []byte
	blocks    int
	eventsOff bool
	err       error // the first failed write to stdout

	// line, when set, replaces the view: one line per change, written to
	// lineOut (waiting for an outcome without --watch).
	line    func(*cxv1.CXExperiment) string
	lineOut io.Writer
	// view, when set, receives the experiment and its latest events at each
	// change instead of stdout (the dashboard's live page).
	view func(*cxv1.CXExperiment, []eventsv1.Event)
	// until, when set, ends the watch once it holds for the experiment.
	until func(*cxv1.CXExperiment) bool
	// gone is set when the experiment was deleted.
	gone bool
}

// watchStatus shows the experiment, then again each time it or its events
// change, until ctx ends (Ctrl-C) or the experiment is deleted.
func (o *Options) watchStatus(ctx context.Context, c client.WithWatch, ns, name string, maxEvents int) error {
	return o.newWatcher(c, ns, name, maxEvents).run(ctx)
}

func (o *Options) newWatcher(c client.WithWatch, ns, name string, maxEvents int) *statusWatcher {
	return &statusWatcher{o: o, c: c, ns: ns, name: name, maxEvents: maxEvents, events: map[string]eventsv1.Event{}}
}

// run shows the experiment, then again at each change, until ctx ends, the
// experiment is deleted, or until holds.
func (w *statusWatcher) run(ctx context.Context) error {
	if err := w.getExperiment(ctx); err != nil {
		return err
	}
	if w.line == nil {
		w.listEvents(ctx)
	} else {
		w.eventsOff = true
	}
	w.show()
	defer w.stop()
	if w.until != nil && w.until(w.exp) {
		return w.err
	}
	for {
		if w.err != nil {
			return w.err
		}
		if err := w.startWatches(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var expCh, evCh <-chan watch.Event
		expCh = w.expW.ResultChan()
		if w.evW != nil {
			evCh = w.evW.ResultChan()
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-expCh:
			if done, err := w.onExperiment(ctx, ev, ok); done || err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if err == nil {
					err = w.err
				}
				return err
			}
		case ev, ok := <-evCh:
			w.onEvent(ctx, ev, ok)
		}
	}
}

// startWatches (re)starts the watches that are not running, from the last
// versions seen. The events watch is best effort, as in status.
func (w *statusWatcher) startWatches(ctx context.Context) error {
	if w.expW == nil {
		x, err := w.c.Watch(ctx, &cxv1.CXExperimentList{}, client.InNamespace(w.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: w.expRV, AllowWatchBookmarks: true}},
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", w.name)})
		if err != nil {
			return fmt.Errorf("watch cxexperiment %s/%s: %w", w.ns, w.name, err)
		}
		w.expW = x
	}
	if w.evW == nil && !w.eventsOff {
		x, err := w.c.Watch(ctx, &eventsv1.EventList{}, client.InNamespace(w.ns),
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: w.eventsRV, AllowWatchBookmarks: true}},
			client.MatchingFieldsSelector{Selector: eventSelector(w.name)})
		if err != nil {
			w.eventsOff = true
			return nil
		}
		w.evW = x
	}
	return nil
}

func (w *statusWatcher) stop() {
	for _, x := range []watch.Interface{w.expW, w.evW} {
		if x != nil {
			x.Stop()
		}
	}
}

// onExperiment handles a change of the experiment; done when it was deleted.
func (w *statusWatcher) onExperiment(ctx context.Context, ev watch.Event, ok bool) (done bool, err error) {
	if !ok { // the server ended the watch: start another from the last version
		w.expW.Stop()
		w.expW = nil
		return false, nil
	}
	switch ev.Type {
	case watch.Added, watch.Modified:
		if exp, isExp := ev.Object.(*cxv1.CXExperiment); isExp {
			if w.exp.UID != "" && exp.UID != w.exp.UID { // deleted and created again
				w.events = map[string]eventsv1.Event{}
			}
			w.exp, w.expRV = exp, exp.ResourceVersion
			w.show()
			if w.until != nil && w.until(exp) {
				return true, nil
			}
		}
	case watch.Deleted:
		w.deleted()
		return true, nil
	case watch.Bookmark:
		if obj, isMeta := ev.Object.(metav1.Object); isMeta {
			w.expRV = obj.GetResourceVersion()
		}
	case watch.Error: // typically 410 Gone: read again and watch from there
		w.expW.Stop()
		w.expW = nil
		if err := w.getExperiment(ctx); err != nil {
			if ExitCode(err) == ExitNotFound {
				w.deleted()
				return true, nil
			}
			return true, err
		}
		w.show()
		if w.until != nil && w.until(w.exp) {
			return true, nil
		}
	}
	return false, nil
}

func (w *statusWatcher) deleted() {
	w.gone = true
	if w.line != nil || w.view != nil {
		return // the caller reports it
	}
	w.write([]byte(fmt.Sprintf("\ncxexperiment %s/%s was deleted\n", w.ns, w.name)))
}

// write writes to stdout, keeping the first error (a closed pipe ends the watch).
func (w *statusWatcher) write(b []byte) {
	if w.err == nil {
		_, w.err = w.o.Out.Write(b)
	}
}

// onEvent handles a change of the events about the experiment.
func (w *statusWatcher) onEvent(ctx context.Context, ev watch.Event, ok bool) {
	if !ok {
		w.evW.Stop()
		w.evW = nil
		return
	}
	switch ev.Type {
	case watch.Added, watch.Modified, watch.Deleted:
		if e, isEvent := ev.Object.(*eventsv1.Event); isEvent {
			key := e.Namespace + "/" + e.Name
			if ev.Type == watch.Deleted {
				delete(w.events, key)
			} else {
				w.events[key] = *e
			}
			w.eventsRV = e.ResourceVersion
			w.show()
		}
	case watch.Bookmark:
		if obj, isMeta := ev.Object.(metav1.Object); isMeta {
			w.eventsRV = obj.GetResourceVersion()
		}
	case watch.Error:
		w.evW.Stop()
		w.evW = nil
		w.listEvents(ctx)
		w.show()
	}
}

func (w *statusWatcher) getExperiment(ctx context.Context) error {
	exp, err := getExperiment(ctx, w.c, w.ns, w.name)
	if err != nil {
		return err
	}
	w.exp, w.expRV = exp, exp.ResourceVersion
	return nil
}

// listEvents reads the events and the version to watch them from.
func (w *statusWatcher) listEvents(ctx context.Context) {
	list := &eventsv1.EventList{}
	err := w.c.List(ctx, list, client.InNamespace(w.ns), client.MatchingFieldsSelector{Selector: eventSelector(w.name)})
	if err != nil {
		if !apierrors.IsForbidden(err) && ctx.Err() == nil {
			w.o.stderrf("Warning: cannot read the events: %v\n", err)
		}
		w.eventsOff = true
		return
	}
	w.events = map[string]eventsv1.Event{}
	for _, e := range list.Items {
		w.events[e.Namespace+"/"+e.Name] = e
	}
	w.eventsRV = list.ResourceVersion
}

// show renders the view and prints it when it differs from the last one:
// redrawn in place on a terminal, as a new block otherwise.
func (w *statusWatcher) show() {
	if w.line != nil {
		l := w.line(w.exp) + "\n"
		if l == string(w.last) {
			return
		}
		w.last = []byte(l)
		if _, err := io.WriteString(w.lineOut, l); err != nil && w.err == nil {
			w.err = err
		}
		return
	}
	evs := make([]eventsv1.Event, 0, len(w.events))
	for _, e := range w.events {
		evs = append(evs, e)
	}
	evs = lastEvents(filterEvents(evs, w.exp), w.maxEvents)
	if w.view != nil {
		w.view(w.exp, evs)
		return
	}
	var b bytes.Buffer
	_ = RenderStatus(&b, w.exp, evs, w.o.renderOptions()) // a bytes.Buffer does not fail
	if bytes.Equal(b.Bytes(), w.last) {
		return
	}
	w.last = b.Bytes()
	if w.o.tty() {
		w.write([]byte(clearScreen))
	} else if w.blocks > 0 {
		w.write([]byte(blockSeparator + "\n"))
	}
	w.write(b.Bytes())
	w.blocks++
}
