package v1alpha1

import (
	"cmp"
	"strconv"
)

// AnnotationExperimentFence is set on a ResponseTally by the controller: a
// resourceVersion of its CXExperiment that includes every status the
// collector must count by (the run, its phase and settings, and each
// segment's epochs). The controller raises it after writing such a status
// and before it changes traffic; only the controller writes it, and it
// never lowers it.
//
// The collector commits answers against its cache's copy of the experiment
// only when the tally it writes over carries a fence that copy has reached
// (FenceReachedBy); otherwise it reads the experiment from the API server
// first. Its tally writes carry the tally's resourceVersion, so a write
// that started before a raise conflicts and reads again: an answer served
// under new weights is never counted by a copy that has not seen their
// epoch, even while the cache lags for a minute after an API-server outage.
const AnnotationExperimentFence = "cx.rapport.dev/experiment-fence"

// FenceReachedBy reports whether t carries a fence that exp's
// resourceVersion has reached, so that exp may be counted by without
// reading the API server. No fence, or a version that is not a number,
// reports false.
func (t *ResponseTally) FenceReachedBy(exp *CXExperiment) bool {
	fence, ok := t.Annotations[AnnotationExperimentFence]
	return ok && versionAtLeast(exp.ResourceVersion, fence)
}

// FencedAt reports whether t's fence is already at or past exp's
// resourceVersion, so that raising it to exp's would change nothing.
func (t *ResponseTally) FencedAt(exp *CXExperiment) bool {
	fence, ok := t.Annotations[AnnotationExperimentFence]
	return ok && versionAtLeast(fence, exp.ResourceVersion)
}

// versionAtLeast reports whether resourceVersion a is b or later; one that
// cannot be compared is not, so a fence that cannot be checked reads the
// API server.
func versionAtLeast(a, b string) bool {
	c, ok := CompareResourceVersions(a, b)
	return ok && c >= 0
}

// CompareResourceVersions compares two resourceVersions of objects of one
// API server as the numbers etcd makes them (Kubernetes calls them opaque):
// -1, 0 or +1 as a is older than, the same as or newer than b. ok is false
// when either is not a number.
func CompareResourceVersions(a, b string) (c int, ok bool) {
	va, errA := strconv.ParseUint(a, 10, 64)
	vb, errB := strconv.ParseUint(b, 10, 64)
	if errA != nil || errB != nil {
		return 0, false
	}
	return cmp.Compare(va, vb), true
}
