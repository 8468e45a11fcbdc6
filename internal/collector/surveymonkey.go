package collector

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/feedback"
)

// DefaultSurveyMonkeyAPI is the SurveyMonkey API the collector reads
// responses from (SurveyMonkey's webhooks name a response but carry no
// answers).
const DefaultSurveyMonkeyAPI = "https://api.surveymonkey.com"

// maxProviderBody bounds what the collector reads from a provider's API.
const maxProviderBody = 1 << 20

// surveyMonkeyResponse reads the answers of the response a SurveyMonkey
// webhook names: GET /v3/surveys/{survey_id}/responses/{object_id}/details
// with the Secret's access token. A response that is gone is a permanent
// 422; anything else (token refused, API down) is 503, so that SurveyMonkey
// retries.
func (s *Server) surveyMonkeyResponse(ctx context.Context, src *cxv1.FeedbackSource, payload *feedback.Payload) (any, *feedbackError) {
	survey, response := feedback.SurveyMonkeyResponse(payload)
	if survey == "" || response == "" {
		return nil, refuse(http.StatusUnprocessableEntity, reasonMappingFailed, "the SurveyMonkey webhook has no resources.survey_id or object_id; subscribe the webhook to response_completed with object_type survey or collector")
	}
	data, e := s.secrets.get(ctx, src.Namespace, src.Spec.SecretRef.Name, 0)
	if e != nil {
		return nil, e
	}
	u := fmt.Sprintf("%s/v3/surveys/%s/responses/%s/details?simple=true", s.opts.SurveyMonkeyAPI, url.PathEscape(survey), url.PathEscape(response))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "SurveyMonkey API request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(data[feedback.KeySurveyMonkeyToken])))
	req.Header.Set("Accept", "application/json")
	r, err := s.httpClient.Do(req)
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "could not read response %s from the SurveyMonkey API: %v; the webhook is retried", response, err)
	}
	defer r.Body.Close()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxProviderBody+1))
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "reading response %s from the SurveyMonkey API: %v", response, err)
	}
	switch {
	case r.StatusCode == http.StatusOK && len(body) > maxProviderBody:
		// Permanent: retrying would fetch the same response again.
		return nil, refuse(http.StatusUnprocessableEntity, reasonProviderAPI, "the SurveyMonkey API's response %s is larger than %d bytes; nothing was counted", response, maxProviderBody)
	case r.StatusCode == http.StatusNotFound:
		return nil, refuse(http.StatusUnprocessableEntity, reasonProviderAPI, "the SurveyMonkey API has no response %s of survey %s (deleted?); nothing was counted", response, survey)
	case r.StatusCode == http.StatusUnauthorized || r.StatusCode == http.StatusForbidden:
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "the SurveyMonkey API refused the access token (HTTP %d); put a token with the responses_read_detail scope in the Secret's key %q", r.StatusCode, feedback.KeySurveyMonkeyToken)
	case r.StatusCode != http.StatusOK:
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "the SurveyMonkey API answered HTTP %d for response %s; the webhook is retried", r.StatusCode, response)
	}
	v, err := feedback.DecodeJSON(body)
	if err != nil {
		return nil, refuse(http.StatusServiceUnavailable, reasonProviderAPI, "the SurveyMonkey API's answer for response %s is not JSON: %v", response, err)
	}
	return v, nil
}
