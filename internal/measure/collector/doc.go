// Package collector is the measure.Source of the built-in feedback
// collector: it reads the ResponseTally that package internal/collector
// commits for an experiment and returns its counts as measure.Tallies.
//
// It only reads, through the reader it is given (the manager's cache): it
// never writes a tally, never talks to the collector's HTTP API and never
// sees raw answers, which are not stored. Counts are returned only for the
// experiment's current run, scale and incarnation (the tally's controller
// UID): a tally of an earlier run, or left by a deleted experiment of the
// same name, reads as no data.
//
// Every count it returns was acknowledged to a client with a 202 only after
// being committed, so what it reads is durable; a cached read may lag the
// newest commit by the watch delay, and the controller's watch on the tally
// triggers another measurement when the cache catches up. LastResponseAt is
// the commit time the collector stamps on the tally.
package collector
