package collector

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// maxTokenBytes bounds the bearer token read from a request.
const maxTokenBytes = 4096

// tokenDigest identifies a presented token without keeping it.
type tokenDigest [sha256.Size]byte

// short is the digest prefix written to audit logs: enough to tell tokens
// apart, useless to an attacker.
func (d tokenDigest) short() string { return hex.EncodeToString(d[:4]) }

// bearer extracts the token from an Authorization header.
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || len(token) > maxTokenBytes {
		return "", false
	}
	return token, true
}

// authenticate checks the request's token against the feedback-token Secrets
// of namespace that allow posting responses (see tokenScopes).
func authenticate(ctx context.Context, c client.Reader, namespace, header string) (tokenDigest, *Error) {
	token, ok := bearer(header)
	if !ok {
		return tokenDigest{}, errorf(http.StatusUnauthorized, "missing or malformed Authorization header; send Authorization: Bearer <token> with the token of a Secret labelled %s=true in namespace %s", cxv1.LabelFeedbackToken, namespace)
	}
	return authenticateToken(ctx, c, namespace, token, ScopeResponses)
}

// authenticateToken checks a token against the feedback-token Secrets of
// namespace whose scopes include scope: nil when it is one of them, 401 when
// it is none, 403 when it is a token of another namespace (or of this one
// without the scope). Digests are compared in constant time, so timing says
// nothing about how much of a token matched.
func authenticateToken(ctx context.Context, c client.Reader, namespace, token, scope string) (tokenDigest, *Error) {
	if token == "" || len(token) > maxTokenBytes {
		return tokenDigest{}, errorf(http.StatusUnauthorized, "missing token; send the token of a Secret labelled %s=true in namespace %s", cxv1.LabelFeedbackToken, namespace)
	}
	d := tokenDigest(sha256.Sum256([]byte(token)))
	found, err := matchToken(ctx, c, d, scope, client.InNamespace(namespace))
	if err != nil {
		return d, errorf(http.StatusServiceUnavailable, "could not read the feedback tokens of namespace %s; retry", namespace)
	}
	if found != "" {
		return d, nil
	}
	// Tell a token of the wrong namespace from a bad token: a client that
	// posts to the wrong namespace needs to hear that, not "unauthorized".
	if found, err = matchToken(ctx, c, d, ""); err == nil && found != "" {
		if found == namespace {
			return d, errorf(http.StatusForbidden, "the token's Secret does not allow %s (annotation %s); use a token whose Secret allows it", scope, AnnotationTokenScopes)
		}
		return d, errorf(http.StatusForbidden, "the token belongs to another namespace; use a token of a Secret labelled %s=true in namespace %s", cxv1.LabelFeedbackToken, namespace)
	}
	return d, errorf(http.StatusUnauthorized, "the token is not valid; use the value of key %q of a Secret labelled %s=true in namespace %s", cxv1.FeedbackTokenKey, cxv1.LabelFeedbackToken, namespace)
}

// matchToken returns the namespace of a feedback-token Secret whose token has
// digest d and whose scopes include scope ("": any), or "". Every Secret is
// compared, so the time taken does not depend on where (or whether) a match is.
func matchToken(ctx context.Context, c client.Reader, d tokenDigest, scope string, opts ...client.ListOption) (string, error) {
	var secrets corev1.SecretList
	opts = append(opts, client.MatchingLabels{cxv1.LabelFeedbackToken: "true"})
	if err := c.List(ctx, &secrets, opts...); err != nil {
		return "", err
	}
	found := ""
	for i := range secrets.Items {
		s := &secrets.Items[i]
		v, ok := s.Data[cxv1.FeedbackTokenKey]
		// Secrets made from files often end in a newline; it is not part of the token.
		v = []byte(strings.TrimSpace(string(v)))
		if !ok || len(v) == 0 || (scope != "" && !tokenScopes(s).has(scope)) {
			continue
		}
		sd := sha256.Sum256(v)
		if subtle.ConstantTimeCompare(d[:], sd[:]) == 1 {
			found = s.Namespace
		}
	}
	return found, nil
}

// limiters holds a token bucket per authenticated token. It is a bounded
// LRU (k8s.io/utils/lru): the least recently used bucket is dropped past
// max entries, so many tokens cannot grow memory (a dropped token restarts
// with a full burst).
type limiters struct {
	rate  rate.Limit
	burst int

	mu    sync.Mutex // makes "get or create" one step
	cache *lru.Cache // tokenDigest -> *rate.Limiter
}

func newLimiters(r rate.Limit, burst, max int) *limiters {
	return &limiters{rate: r, burst: burst, cache: lru.New(max)}
}

// allow takes one request from key's bucket, or says how long to wait.
func (l *limiters) allow(key tokenDigest, now time.Time) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	l.mu.Lock()
	var lim *rate.Limiter
	if v, ok := l.cache.Get(key); ok {
		lim = v.(*rate.Limiter)
	} else {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.cache.Add(key, lim)
	}
	l.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	defer r.CancelAt(now)
	if !r.OK() {
		return false, time.Second
	}
	return false, r.DelayFrom(now)
}

// limited is false when every request is allowed (an unlimited rate): a
// client's key need not be found then.
func (l *limiters) limited() bool { return l.rate != rate.Inf }

func (l *limiters) len() int { return l.cache.Len() }
