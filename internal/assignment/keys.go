package assignment

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// secretSuffix ends the name of every key Secret.
const secretSuffix = "-assignment-key"

// SecretName is the name of the Secret holding an experiment's key:
// <experiment>-assignment-key, shortened with a hash when the experiment's
// name is too long for that.
func SecretName(experiment string) string {
	if name := experiment + secretSuffix; len(name) <= 253 {
		return name
	}
	sum := sha256.Sum256([]byte(experiment))
	h := hex.EncodeToString(sum[:4])
	prefix := strings.TrimRight(experiment[:253-len(secretSuffix)-len(h)-1], ".-")
	return prefix + "-" + h + secretSuffix
}

// ErrNoKey says that the experiment has no key Secret (yet).
var ErrNoKey = fmt.Errorf("no assignment key")

// Keys reads experiments' signing keys, and creates them for the
// controller. Keys are cached in memory for TTL, keyed by the experiment's
// UID, so the collector's hot path reads no Secret; a key that fails to
// verify a value may be re-read sooner with Refresh.
type Keys struct {
	// Reader reads key Secrets; an uncached reader (they are not in the
	// manager's Secret cache, which holds feedback tokens only).
	Reader client.Reader
	// Writer creates key Secrets (the controller only).
	Writer client.Writer
	// TTL is how long a key is served from memory (default 1 minute).
	TTL   time.Duration
	Clock clock.PassiveClock

	mu    sync.Mutex
	cache map[types.UID]cachedKey
}

type cachedKey struct {
	key     []byte
	fetched time.Time
}

// maxCached bounds the cache; past it, the cache starts over.
const maxCached = 10000

func (k *Keys) now() time.Time {
	if k.Clock == nil {
		return time.Now()
	}
	return k.Clock.Now()
}

func (k *Keys) ttl() time.Duration {
	if k.TTL <= 0 {
		return time.Minute
	}
	return k.TTL
}

func (k *Keys) cached(uid types.UID, maxAge time.Duration) []byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, ok := k.cache[uid]
	if !ok || k.now().Sub(c.fetched) >= maxAge {
		return nil
	}
	return c.key
}

func (k *Keys) store(uid types.UID, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cache == nil || len(k.cache) >= maxCached {
		k.cache = map[types.UID]cachedKey{}
	}
	k.cache[uid] = cachedKey{key: key, fetched: k.now()}
}

// Get returns the key of exp, from memory when it was read less than TTL
// ago. It returns ErrNoKey when the Secret does not exist, or belongs to
// another experiment of the same name (another UID).
func (k *Keys) Get(ctx context.Context, exp *cxv1.CXExperiment) ([]byte, error) {
	if key := k.cached(exp.UID, k.ttl()); key != nil {
		return key, nil
	}
	return k.read(ctx, exp)
}

// Refresh re-reads the key of exp unless it was read less than minAge ago,
// and reports whether the key changed; the collector calls it when a value
// fails to verify, so a recreated Secret is picked up at once.
func (k *Keys) Refresh(ctx context.Context, exp *cxv1.CXExperiment, minAge time.Duration) ([]byte, bool, error) {
	old := k.cached(exp.UID, k.ttl())
	if old != nil && k.cached(exp.UID, minAge) != nil {
		return old, false, nil
	}
	key, err := k.read(ctx, exp)
	if err != nil {
		return nil, false, err
	}
	return key, string(key) != string(old), nil
}

func (k *Keys) read(ctx context.Context, exp *cxv1.CXExperiment) ([]byte, error) {
	s := &corev1.Secret{}
	if err := k.Reader.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: SecretName(exp.Name)}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, ErrNoKey
		}
		return nil, fmt.Errorf("read Secret %s: %w", SecretName(exp.Name), err)
	}
	if !metav1.IsControlledBy(s, exp) {
		return nil, ErrNoKey
	}
	key := s.Data[cxv1.AssignmentKeyDataKey]
	if len(key) < KeyBytes {
		return nil, fmt.Errorf("secret %s holds no %d-byte key %q; delete it and Rapport creates a new one", s.Name, KeyBytes, cxv1.AssignmentKeyDataKey)
	}
	k.store(exp.UID, key)
	return key, nil
}

// Ensure returns the key of exp, creating its Secret (owned by exp, so
// that it is deleted with it) when there is none. A Secret of the same name
// that exp does not own is an error naming the fix.
func (k *Keys) Ensure(ctx context.Context, exp *cxv1.CXExperiment) ([]byte, error) {
	key, err := k.Get(ctx, exp)
	if !errors.Is(err, ErrNoKey) {
		return key, err
	}
	name := SecretName(exp.Name)
	existing := &corev1.Secret{}
	if err := k.Reader.Get(ctx, types.NamespacedName{Namespace: exp.Namespace, Name: name}, existing); err == nil {
		return nil, fmt.Errorf("secret %s exists but is not owned by experiment %s (a leftover of a deleted experiment of the same name?); delete it and Rapport creates a new key", name, exp.Name)
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("read Secret %s: %w", name, err)
	}
	key = make([]byte, KeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: exp.Namespace,
			Labels:          map[string]string{cxv1.LabelAssignmentKey: "true", cxv1.LabelManagedBy: "rapport"},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(exp, cxv1.GroupVersion.WithKind("CXExperiment"))},
		},
		Type:      corev1.SecretType(cxv1.SecretTypeAssignmentKey),
		Immutable: ptrTo(true),
		Data:      map[string][]byte{cxv1.AssignmentKeyDataKey: key},
	}
	if len(exp.Name) <= 63 {
		s.Labels[cxv1.LabelExperiment] = exp.Name
	}
	if err := k.Writer.Create(ctx, s); err != nil {
		if apierrors.IsAlreadyExists(err) { // created meanwhile (a previous leader)
			return k.read(ctx, exp)
		}
		return nil, fmt.Errorf("create Secret %s for the assignment key: %w", name, err)
	}
	k.store(exp.UID, key)
	return key, nil
}

func ptrTo[T any](v T) *T { return &v }
