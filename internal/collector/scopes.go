package collector

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// AnnotationTokenScopes on a feedback-token Secret lists, comma-separated,
// what its token may do: "responses" (post customers' answers) and
// "verdicts" (read verdicts and answer the gates of Argo Rollouts and
// Flagger). A Secret without it allows both, as before scopes existed. A gate
// token whose Secret says "verdicts" cannot forge feedback, so it can live in
// a Canary's webhook metadata or an AnalysisTemplate.
const AnnotationTokenScopes = "cx.rapport.dev/token-scopes"

// Token scopes.
const (
	ScopeResponses = "responses"
	ScopeVerdicts  = "verdicts"
)

type scopes []string

func (s scopes) has(scope string) bool { return slices.Contains(s, scope) }

// tokenScopes reads a Secret's scopes; unknown words are ignored (they grant
// nothing), and a Secret without the annotation gets every scope.
func tokenScopes(s *corev1.Secret) scopes {
	v, ok := s.Annotations[AnnotationTokenScopes]
	if !ok {
		return scopes{ScopeResponses, ScopeVerdicts}
	}
	var out scopes
	for _, w := range strings.Split(v, ",") {
		if w = strings.TrimSpace(w); w != "" {
			out = append(out, w)
		}
	}
	return out
}
