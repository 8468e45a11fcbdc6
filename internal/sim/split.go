package sim

import (
	"maps"
	"time"
)

// Split is a traffic split (Weights[segment][variant]) and a moment at which
// it was surely the one served: answers drawn with Weights carry At as the
// time their customers were served.
type Split struct {
	Weights map[string]map[string]int32
	At      time.Time
}

// Confirmer turns successive reads of the live split into Splits with a
// trustworthy At.
//
// A read returns the split as it was at some instant between the read's
// start and its end, not at its start: a read can take hundreds of
// milliseconds (a loaded API server; client-go's client-side rate limit,
// 5 requests/s by default, queues it), and a split read from a route that changed
// during the read, stamped with the read's start, would send answers drawn
// with the new weights into the epoch before them — a sample-ratio mismatch
// made by the client. So a split is believed only once two reads in a row
// return it: it was then in effect from some instant of the first read to
// some instant of the second, so at least over the gap between them, and the
// second read's start lies in that gap. This holds because Rapport never
// returns to a split it has left within a run (weights move forward through
// the steps; a rollback and a promotion are final), so a split seen twice was
// never replaced in between.
//
// A read that differs from the one before confirms nothing: the caller keeps
// drawing with the last confirmed split and its At, which are still true of
// the customers they describe.
type Confirmer struct {
	last map[string]map[string]int32
	seen bool
}

// Observe records a read that began at start and returned weights; it
// returns the confirmed split and true when the read before returned the
// same weights.
func (c *Confirmer) Observe(start time.Time, weights map[string]map[string]int32) (Split, bool) {
	same := c.seen && sameSplit(c.last, weights)
	c.last, c.seen = weights, true
	if !same {
		return Split{}, false
	}
	return Split{Weights: weights, At: start}, true
}

func sameSplit(a, b map[string]map[string]int32) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]int32) bool { return maps.Equal(x, y) })
}
