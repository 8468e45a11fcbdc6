// Package manifests tests Rapport's install and observability artefacts
// without a cluster: the Grafana dashboard (config/grafana), the Prometheus
// Operator objects (config/prometheus), the Helm chart (charts/rapport) and
// the runbooks of docs/operations.md.
//
// What it checks:
//   - every PromQL expression of the dashboard and of the alert rules parses
//     with the Prometheus parser (stock options, no experimental features),
//     names only metrics that Rapport or controller-runtime register, and
//     filters only on labels those metrics have;
//   - every alert has a severity, a summary, a description and a runbook_url
//     whose anchor is a heading of docs/operations.md;
//   - the chart has not drifted from config/: CRDs byte-identical, ClusterRole
//     rules equal to config/rbac/role.yaml, Deployment security context, probes
//     and resources equal to config/manager/manager.yaml, alerts and dashboard
//     identical;
//   - `helm lint` and `helm template` succeed for several value sets, the
//     rendered objects decode strictly into Kubernetes types, and the key
//     fields (image, args, probes, ports, selectors) are right; bad values are
//     refused by values.schema.json;
//   - the rendered objects are accepted by a real kube-apiserver (envtest,
//     server-side dry-run), and the pod template passes the restricted Pod
//     Security Standard.
//
// The tools it needs (helm, kustomize, controller-gen) are the pinned ones of
// the Makefile, found in ./bin or through $HELM, $KUSTOMIZE and
// $CONTROLLER_GEN; a missing tool is installed once with `make <tool>`. When
// that fails, the tests that need it fail in CI (CI=true) and are skipped
// elsewhere, with the reason.
package manifests
