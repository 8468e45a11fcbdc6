package collector

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// The customer-satisfaction gate: Rapport's verdicts for the progressive
// delivery tool a team already runs (docs/integrations.md).
//
//	GET  /v1/namespaces/{namespace}/experiments/{name}/verdict[?variant=V&segment=S]
//	     Authorization: Bearer <token>              (Argo Rollouts' Web metric provider)
//	     -> 200 Verdict, whatever the decision
//	POST /v1/namespaces/{namespace}/experiments/{name}/flagger/confirm-promotion
//	POST /v1/namespaces/{namespace}/experiments/{name}/flagger/rollback
//	     Flagger's webhook payload {"name","namespace","phase","checksum","metadata"};
//	     the token in metadata.token (Flagger sends no headers), or Authorization
//	     -> 200 when the hook's answer is yes (promote; roll back), 409 when no
//
// Tokens are those of the feedback API whose Secret's scopes include
// "verdicts" (AnnotationTokenScopes). Answers fail safe: an error (401, 403,
// 404, 503) never reads as a yes to Flagger (it only takes 200..202) nor as a
// success to Argo Rollouts (a non-2xx answer is a measurement error).

// Flagger webhook types Rapport answers.
const (
	FlaggerConfirmPromotion = "confirm-promotion"
	FlaggerRollback         = "rollback"
)

// maxHookBody bounds the body of a Flagger webhook call.
const maxHookBody = 64 << 10

// FlaggerPayload is the body Flagger POSTs to a webhook (CanaryWebhookPayload
// of fluxcd/flagger pkg/apis/flagger/v1beta1). Metadata are the webhook's
// metadata of the Canary: Rapport reads "token", "variant" and "segment".
type FlaggerPayload struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Checksum  string            `json:"checksum,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// verdict handles GET .../experiments/{name}/verdict.
func (s *Server) verdict(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		s.rejectGate(w, r, "MethodNotAllowed", tokenDigest{}, errorf(http.StatusMethodNotAllowed, "method %s is not allowed; GET the verdict", r.Method))
		return
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		s.rejectGate(w, r, "Unauthorized", tokenDigest{}, errorf(http.StatusUnauthorized, "missing or malformed Authorization header; send Authorization: Bearer <token> with the token of a Secret labelled %s=true in namespace %s", cxv1.LabelFeedbackToken, ns))
		return
	}
	q := r.URL.Query()
	for k := range q {
		if k != "variant" && k != "segment" {
			s.rejectGate(w, r, "InvalidQuery", tokenDigest{}, errorf(http.StatusBadRequest, "unknown query parameter %q; the verdict takes variant and segment", clip(k)))
			return
		}
	}
	v, digest, e := s.gateVerdict(r.Context(), ns, name, token, VerdictFilter{Variant: q.Get("variant"), Segment: q.Get("segment")})
	if e != nil {
		s.rejectGate(w, r, reasonFor(e.Code, "VerdictUnavailable"), digest, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, v)
}

// flaggerHook handles POST .../experiments/{name}/flagger/{hook}.
func (s *Server) flaggerHook(w http.ResponseWriter, r *http.Request) {
	ns, name, hook := r.PathValue("namespace"), r.PathValue("name"), r.PathValue("hook")
	if hook != FlaggerConfirmPromotion && hook != FlaggerRollback {
		s.rejectGate(w, r, "UnknownHook", tokenDigest{}, errorf(http.StatusNotFound, "Rapport answers the Flagger webhook types %s and %s, not %q", FlaggerConfirmPromotion, FlaggerRollback, clip(hook)))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.rejectGate(w, r, "MethodNotAllowed", tokenDigest{}, errorf(http.StatusMethodNotAllowed, "method %s is not allowed; Flagger POSTs its webhook payload", r.Method))
		return
	}
	body, err := readBody(w, r, maxHookBody)
	if err != nil {
		s.rejectGate(w, r, "TooLarge", tokenDigest{}, errorf(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes; Flagger's webhook payload is much smaller", maxHookBody))
		return
	}
	var p FlaggerPayload
	if err := json.Unmarshal(body, &p); err != nil {
		s.rejectGate(w, r, "Invalid", tokenDigest{}, errorf(http.StatusBadRequest, "the body is not Flagger's webhook payload (JSON with name, namespace, phase, metadata): %v", err))
		return
	}
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		token = p.Metadata["token"]
	}
	if token == "" {
		s.rejectGate(w, r, "Unauthorized", tokenDigest{}, errorf(http.StatusUnauthorized, "no token: set metadata.token of the Canary's webhook to the token of a Secret labelled %s=true in namespace %s (scope %s)", cxv1.LabelFeedbackToken, ns, ScopeVerdicts))
		return
	}
	v, digest, e := s.gateVerdict(r.Context(), ns, name, token, VerdictFilter{Variant: p.Metadata["variant"], Segment: p.Metadata["segment"]})
	if e != nil {
		s.rejectGate(w, r, reasonFor(e.Code, "VerdictUnavailable"), digest, e)
		return
	}
	yes := (hook == FlaggerConfirmPromotion && v.Decision == GatePromote) || (hook == FlaggerRollback && v.Decision == GateRollback)
	code := http.StatusConflict
	if yes {
		code = http.StatusOK
	}
	s.log.V(1).Info("flagger webhook answered", "namespace", ns, "experiment", name, "hook", hook,
		"canary", clip(p.Namespace)+"/"+clip(p.Name), "canaryPhase", clip(p.Phase), "decision", v.Decision, "code", code)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, code, v)
}

// gateVerdict authenticates token for the verdicts of namespace ns, applies
// the token's rate limit, reads the experiment and builds its verdict.
func (s *Server) gateVerdict(ctx context.Context, ns, name, token string, f VerdictFilter) (*Verdict, tokenDigest, *Error) {
	digest, e := authenticateToken(ctx, s.opts.Client, ns, token, ScopeVerdicts)
	if e != nil {
		return nil, digest, e
	}
	if ok, wait := s.limits.allow(digest, s.clock.Now()); !ok {
		return nil, digest, &Error{Code: http.StatusTooManyRequests, Message: "more than the allowed requests per second with this token; retry after " +
			strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))) + "s"}
	}
	notFound := errorf(http.StatusNotFound, "experiment %s not found in namespace %s; check the name in the URL", clip(name), clip(ns))
	if !mayExist(ns, name) {
		return nil, digest, notFound
	}
	exp := &cxv1.CXExperiment{}
	if err := s.opts.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, exp); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, digest, notFound
		}
		s.log.Error(err, "reading experiment", "namespace", ns, "experiment", name)
		return nil, digest, errorf(http.StatusServiceUnavailable, "could not read experiment %s; retry", clip(name))
	}
	v, e := BuildVerdict(exp, f)
	return v, digest, e
}

// rejectGate writes a rejection of a gate request and its audit line.
func (s *Server) rejectGate(w http.ResponseWriter, r *http.Request, reason string, digest tokenDigest, e *Error) {
	if e.Code == http.StatusServiceUnavailable || e.Code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	token := "none"
	if digest != (tokenDigest{}) {
		token = digest.short()
	}
	s.log.Info("gate request rejected", "namespace", clip(r.PathValue("namespace")), "experiment", clip(r.PathValue("name")),
		"path", clip(r.URL.Path), "code", e.Code, "reason", reason, "message", e.Message, "remote", r.RemoteAddr, "token", token)
	writeError(w, e)
}
