package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/feedback"
	"github.com/rapport-dev/rapport/internal/metrics"
)

// FeedbackSourceReconciler reports whether a FeedbackSource can take
// webhooks: its mapping compiles and its Secret holds the keys its provider
// needs (what the CRD schema cannot check). The collector serves the
// webhooks and records the last accepted and rejected events.
type FeedbackSourceReconciler struct {
	client.Client
	// APIReader reads the source's Secret (Secrets are not cached).
	APIReader client.Reader
}

// +kubebuilder:rbac:groups=cx.rapport.dev,resources=feedbacksources,verbs=get;list;watch
// +kubebuilder:rbac:groups=cx.rapport.dev,resources=feedbacksources/status,verbs=get;patch

// recheckSecret is how often a source whose Secret is missing or incomplete
// looks again (Secrets are not watched).
const recheckSecret = time.Minute

// WebhookPath is the collector path a FeedbackSource's provider posts to.
func WebhookPath(src *cxv1.FeedbackSource) string {
	return fmt.Sprintf("/v1/namespaces/%s/sources/%s/webhook", src.Namespace, src.Name)
}

// Reconcile sets the Ready condition and the webhook path of a FeedbackSource.
func (r *FeedbackSourceReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	src := &cxv1.FeedbackSource{}
	if err := r.Get(ctx, req.NamespacedName, src); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ForgetFeedbackSource(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := src.DeepCopy()
	secret := &corev1.Secret{}
	serr := r.APIReader.Get(ctx, types.NamespacedName{Namespace: src.Namespace, Name: src.Spec.SecretRef.Name}, secret)
	if serr != nil && !apierrors.IsNotFound(serr) {
		return ctrl.Result{}, fmt.Errorf("read Secret %s: %w", src.Spec.SecretRef.Name, serr)
	}
	var data map[string][]byte
	if serr == nil {
		data = secret.Data
	}
	cond := feedbackSourceReady(src, serr == nil, data)
	meta.SetStatusCondition(&src.Status.Conditions, cond)
	src.Status.ObservedGeneration = src.Generation
	src.Status.WebhookPath = WebhookPath(src)
	if !equality.Semantic.DeepEqual(before.Status, src.Status) {
		if err := r.Status().Patch(ctx, src, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if cond.Reason == cxv1.ReasonSecretNotFound || cond.Reason == cxv1.ReasonSecretKeyMissing {
		return ctrl.Result{RequeueAfter: recheckSecret}, nil
	}
	return ctrl.Result{}, nil
}

// feedbackSourceReady is the Ready condition of src, given whether its
// Secret exists and the Secret's data.
func feedbackSourceReady(src *cxv1.FeedbackSource, secretFound bool, data map[string][]byte) metav1.Condition {
	c := metav1.Condition{Type: cxv1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: src.Generation}
	if _, err := feedback.Compile(src.Spec.Provider, src.Spec.Mapping); err != nil {
		c.Reason, c.Message = cxv1.ReasonMappingInvalid, err.Error()
		return c
	}
	keys := feedback.RequiredKeys(src.Spec.Provider, src.Spec.Generic)
	if !secretFound {
		c.Reason = cxv1.ReasonSecretNotFound
		c.Message = fmt.Sprintf("Secret %s of spec.secretRef not found in namespace %s; create it with key(s) %s", src.Spec.SecretRef.Name, src.Namespace, strings.Join(keys, ", "))
		return c
	}
	if missing := feedback.MissingKeys(src.Spec.Provider, src.Spec.Generic, data); len(missing) > 0 {
		c.Reason = cxv1.ReasonSecretKeyMissing
		c.Message = fmt.Sprintf("Secret %s lacks key(s) %s that provider %s needs; add them", src.Spec.SecretRef.Name, strings.Join(missing, ", "), src.Spec.Provider)
		return c
	}
	c.Status, c.Reason = metav1.ConditionTrue, cxv1.ReasonValid
	c.Message = fmt.Sprintf("ready: %s posts to %s on the collector", src.Spec.Provider, WebhookPath(src))
	return c
}

// SetupWithManager registers the controller.
func (r *FeedbackSourceReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&cxv1.FeedbackSource{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("feedbacksource").
		Complete(r)
}
