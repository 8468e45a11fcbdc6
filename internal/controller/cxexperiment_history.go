package controller

import (
	"context"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/history"
)

// recordHistory appends the run's point to the experiment's history
// ConfigMap (<experiment>-history) after the status write, when
// history.Due says the reconcile recorded something: a measurement (at
// most once per interval) or a change of verdict, weight, step or phase.
// The history is for reports: a failed write is logged, never retried at
// the cost of the rollout.
func (r *CXExperimentReconciler) recordHistory(ctx context.Context, sc *scope) {
	if !history.Due(&sc.before, &sc.exp.Status) {
		return
	}
	log := ctrl.LoggerFrom(ctx).WithValues("configMap", history.ConfigMapName(sc.exp.Name))
	reader := r.APIReader // uncached: no informer on every ConfigMap of the cluster
	if reader == nil {
		reader = r.Client
	}
	cm := &corev1.ConfigMap{}
	err := reader.Get(ctx, types.NamespacedName{Namespace: sc.exp.Namespace, Name: history.ConfigMapName(sc.exp.Name)}, cm)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		log.Error(err, "read the experiment's history; this point is not recorded")
		return
	}
	var h *history.History
	if exists {
		if !metav1.IsControlledBy(cm, sc.exp) {
			log.Error(nil, "a ConfigMap of the history's name exists and is not owned by the experiment; history not recorded (rename or delete it)")
			return
		}
		if h, err = history.Decode(cm.BinaryData[history.Key]); err != nil {
			log.Error(err, "the recorded history is unreadable; starting it over")
		}
	}
	h = history.Append(h, sc.exp.Name, &sc.exp.Status, sc.now)
	data, err := history.Encode(h)
	if err != nil {
		log.Error(err, "encode the experiment's history")
		return
	}
	if !exists {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: history.ConfigMapName(sc.exp.Name), Namespace: sc.exp.Namespace}}
		if err := controllerutil.SetControllerReference(sc.exp, cm, r.Scheme); err != nil {
			log.Error(err, "own the experiment's history")
			return
		}
	}
	cm.Labels = mergeLabels(cm.Labels, map[string]string{
		cxv1.LabelManagedBy: "rapport", cxv1.LabelExperiment: sc.exp.Name})
	cm.Data = map[string]string{history.RunKey: strconv.Itoa(int(sc.exp.Status.Run))}
	cm.BinaryData = map[string][]byte{history.Key: data}
	if exists {
		err = r.Update(ctx, cm) // carries the resourceVersion read: a concurrent write conflicts
	} else {
		err = r.Create(ctx, cm)
	}
	if err != nil {
		log.Error(err, "write the experiment's history; this point is not recorded")
	}
}

func mergeLabels(a, b map[string]string) map[string]string {
	if a == nil {
		a = map[string]string{}
	}
	for k, v := range b {
		a[k] = v
	}
	return a
}
