package notify

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/notifications-engine/pkg/services"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/test/utils"
)

func configMap(ns string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ConfigMapName}, Data: data}
}

func secret(ns string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: SecretName}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func mustParse(t *testing.T, cm *corev1.ConfigMap, s *corev1.Secret) *config {
	t.Helper()
	c, err := parseConfig(cm, s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		data map[string]string
		want string
	}{
		{"two services of one name", map[string]string{"service.slack.chat": "token: x", "service.webhook.chat": "url: http://x"}, `two services are named "chat"`},
		{"bad key", map[string]string{"service.slack.a.b": "token: x"}, "want service.<type> or service.<type>.<name>"},
		{"unknown service type", map[string]string{"service.carrier-pigeon": "{}"}, `service "carrier-pigeon"`},
		{"broken template", map[string]string{"template.rapport-promoted": "message: '{{ .title '"}, "templates"},
		{"broken report link", map[string]string{"context": "reportURL: 'https://g/{{ .name '"}, "reportURL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(configMap("shop", tc.data), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	c := mustParse(t, configMap("shop", map[string]string{"trigger.on-sync": "- send: [x]", "subscriptions": "- recipients: [slack:a]\n  triggers: [on-sync]"}), nil)
	if w := strings.Join(c.warnings, "\n"); !strings.Contains(w, `key "trigger.on-sync" is ignored`) || !strings.Contains(w, `trigger "on-sync", which does not exist`) {
		t.Errorf("warnings: %q", w)
	}
}

func TestDestinations(t *testing.T) {
	local := mustParse(t, configMap("shop", map[string]string{
		"service.slack":   "token: x",
		"subscriptions":   "- recipients: [slack:shop-rollouts]\n  triggers: [on-rolled-back, on-stalled]\n  selector: team=checkout",
		"defaultTriggers": "[on-rolled-back]",
	}), nil)
	global := mustParse(t, configMap("rapport-system", map[string]string{
		"service.webhook.audit": "url: http://x",
		"subscriptions":         "- recipients: [audit]",
	}), nil)
	exp := experiment()
	exp.Labels = map[string]string{"team": "checkout"}
	exp.Annotations = map[string]string{
		AnnotationPrefix + "/subscribe.on-promoted.slack": "releases;shop-rollouts",
		AnnotationPrefix + "/subscribe..slack":            "everything", // no trigger: defaultTriggers
	}
	c := &configs{local: local, global: global}
	for _, tc := range []struct {
		trigger Trigger
		want    string
	}{
		{TriggerRolledBack, "audit:,slack:everything,slack:shop-rollouts"},
		{TriggerPromoted, "audit:,slack:releases,slack:shop-rollouts"},
		{TriggerStalled, "audit:,slack:shop-rollouts"},
		{TriggerAwaitingPromotion, "audit:"},
	} {
		if got := destString(c.destinations(exp, tc.trigger)); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.trigger, got, tc.want)
		}
	}
	// The namespace's selector does not match another team's experiment.
	exp.Labels["team"] = "search"
	if got := destString(c.destinations(exp, TriggerStalled)); got != "audit:" {
		t.Errorf("another team: %s", got)
	}
	// Services: the namespace's first, then the global ones.
	if c.service("slack") != local || c.service("audit") != global || c.service("nope") != nil {
		t.Error("service lookup")
	}
}

func destString(ds []services.Destination) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Service + ":" + d.Recipient
	}
	return strings.Join(parts, ",")
}

// TestSendToEachChannel drives the engine's real Slack, Teams and webhook
// services against local stand-ins of their APIs and checks what arrives.
func TestSendToEachChannel(t *testing.T) {
	ch := utils.StartChannels()
	defer ch.Close()
	c := mustParse(t, configMap("shop", map[string]string{
		"service.slack":                  "token: $slack-token\napiURL: " + ch.URL + "/slack/api/",
		"service.teams":                  "recipientUrls:\n  rollouts: " + ch.URL + "/teams/rollouts",
		"service.teams-workflows.teamsw": "url: " + ch.URL + "/workflows/rollouts",
		"service.webhook.audit":          "url: " + ch.URL + "/hooks/audit\nsignature:\n  secret: $audit-hmac",
		"context":                        "reportURL: https://grafana.example.com/d/rapport?var-namespace={{ .namespace }}&var-experiment={{ .name }}",
	}), secret("shop", map[string]string{"slack-token": "xoxb-test", "audit-hmac": "hmac-key"}))
	cs := &configs{local: c}
	exp := experiment()
	exp.Status.Rollbacks = []cxv1.Rollback{rollback("new-customers", "express", 0)}
	e := Events(exp)[0]
	ctx := context.Background()
	for _, d := range []services.Destination{{Service: "slack", Recipient: "rollouts"}, {Service: "teams", Recipient: "rollouts"}, {Service: "teamsw"}, {Service: "audit"}} {
		if err := cs.send(ctx, exp, e, e.At, d, 10*time.Second); err != nil {
			t.Fatalf("send to %s: %v", d.Service, err)
		}
	}
	report := "https://grafana.example.com/d/rapport?var-namespace=shop&var-experiment=checkout"

	slack := ch.Delivered("/slack/api/chat.postMessage")
	if len(slack) != 1 || slack[0].Form.Get("channel") != "rollouts" || slack[0].Form.Get("token") != "xoxb-test" && slack[0].Header.Get("Authorization") != "Bearer xoxb-test" {
		t.Fatalf("slack: %+v", slack)
	}
	if text := slack[0].Form.Get("text"); !strings.Contains(text, "Rapport: shop/checkout rolled express back in segment new-customers") || !strings.Contains(text, evidence) {
		t.Errorf("slack text: %s", text)
	}
	var atts []map[string]any
	if err := json.Unmarshal([]byte(slack[0].Form.Get("attachments")), &atts); err != nil || len(atts) != 1 || atts[0]["color"] != "danger" || atts[0]["title_link"] != report {
		t.Errorf("slack attachments (%v): %s", err, slack[0].Form.Get("attachments"))
	}

	teams := ch.Delivered("/teams/rollouts")
	var card map[string]any
	if len(teams) != 1 || teams[0].JSON(&card) != nil || card["@type"] != "MessageCard" || !strings.Contains(card["title"].(string), "rolled express back") {
		t.Fatalf("teams: %+v %v", teams, card)
	}

	wf := ch.Delivered("/workflows/rollouts")
	var msg struct {
		Type        string `json:"type"`
		Attachments []struct {
			ContentType string `json:"contentType"`
			Content     struct {
				Type    string           `json:"type"`
				Body    []map[string]any `json:"body"`
				Actions []map[string]any `json:"actions"`
			} `json:"content"`
		} `json:"attachments"`
	}
	if len(wf) != 1 || wf[0].JSON(&msg) != nil || msg.Type != "message" || msg.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		msg.Attachments[0].Content.Actions[0]["url"] != report || wf[0].Header.Get("Content-Type") != "application/json" {
		t.Fatalf("teams workflows: %+v %+v", wf, msg)
	}

	hook := ch.Delivered("/hooks/audit")
	if len(hook) != 1 {
		t.Fatalf("webhook: %+v", hook)
	}
	var doc Document
	if err := hook[0].JSON(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.APIVersion != DocumentAPIVersion || doc.ID != e.ID || doc.Trigger != "on-rolled-back" || doc.Segment != "new-customers" || doc.Variant != "express" ||
		doc.Evidence != evidence || doc.Responses != 412 || doc.ReportURL != report || doc.ReportCommand != "kubectl cx report checkout -n shop" || doc.Experiment.Run != 1 {
		t.Errorf("webhook document: %+v", doc)
	}
	if h := hook[0].Header; h.Get(HeaderEvent) != e.ID || h.Get(HeaderTrigger) != "on-rolled-back" || h.Get("Content-Type") != "application/json" {
		t.Errorf("webhook headers: %v", h)
	}
	// The signature is over the exact bytes received.
	if sig := hook[0].Header.Get(HeaderSignature); !hmac.Equal([]byte(sig), []byte(Sign([]byte("hmac-key"), hook[0].Body))) || !strings.HasPrefix(sig, "sha256=") {
		t.Errorf("signature %q does not verify", sig)
	}
}

func TestSendErrors(t *testing.T) {
	ch := utils.StartChannels()
	defer ch.Close()
	c := &configs{local: mustParse(t, configMap("shop", map[string]string{
		"service.webhook.down":  "url: " + ch.URL + "/hooks/down",
		"service.webhook.slow":  "url: " + ch.URL + "/hooks/slow",
		"service.webhook.nokey": "url: " + ch.URL + "/hooks/x\nsignature: {secret: $missing}",
		"service.webhook.nosig": "url: " + ch.URL + "/hooks/x\nsignature: {header: X-Sig}",
		"service.webhook.nourl": "url: ftp://x\nheaders: [{name: A, value: b}]",
		"service.webhook.typo":  "url: " + ch.URL + "/hooks/x\nheader: [{name: A, value: b}]",
	}), nil)}
	exp := experiment()
	exp.Status.Rollbacks = []cxv1.Rollback{rollback("new-customers", "express", 0)}
	e := Events(exp)[0]
	ctx := context.Background()

	ch.Fail("/hooks/down", 503)
	if err := c.send(ctx, exp, e, t0, services.Destination{Service: "down"}, 10*time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a failing receiver: %v", err)
	}
	ch.Hang("/hooks/slow")
	start := time.Now()
	if err := c.send(ctx, exp, e, t0, services.Destination{Service: "slow"}, 200*time.Millisecond); !errors.Is(err, errTimeout) {
		t.Errorf("a receiver that never answers: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timeout took %s", took)
	}
	ch.Recover("/hooks/slow")
	for svc, want := range map[string]string{
		"nokey": "$missing not found in Secret shop/rapport-notifications-secret",
		"nosig": "signature.secret is empty",
		"nourl": "url must be an http(s) URL",
		"typo":  `unknown field "header"`,
	} {
		if err := c.send(ctx, exp, e, t0, services.Destination{Service: svc}, time.Second); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("service %s: %v, want %q", svc, err, want)
		}
	}
	if len(ch.Requests("/hooks/x")) != 0 {
		t.Error("a misconfigured webhook sent a request")
	}
	if err := c.send(ctx, exp, e, t0, services.Destination{Service: "nope"}, time.Second); err == nil || !strings.Contains(err.Error(), `no service "nope"`) {
		t.Errorf("an unknown service: %v", err)
	}
}

// TestUserTemplateOverrides: a template.<name> key of the ConfigMap replaces
// Rapport's template and sees the same variables.
func TestUserTemplateOverrides(t *testing.T) {
	ch := utils.StartChannels()
	defer ch.Close()
	c := &configs{local: mustParse(t, configMap("shop", map[string]string{
		"service.webhook.audit":        "url: " + ch.URL + "/hooks/audit",
		"template.rapport-rolled-back": "webhook:\n  audit:\n    method: PUT\n    body: '{\"text\": {{ toJson .message }}, \"segment\": \"{{ .event.segment }}\", \"uid\": \"{{ .experiment.metadata.uid }}\"}'",
	}), nil)}
	exp := experiment()
	exp.Status.Rollbacks = []cxv1.Rollback{rollback("new-customers", "express", 0)}
	e := Events(exp)[0]
	if err := c.send(context.Background(), exp, e, t0, services.Destination{Service: "audit"}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := ch.Delivered("/hooks/audit")
	var body map[string]string
	if len(got) != 1 || got[0].JSON(&body) != nil || body["segment"] != "new-customers" || body["uid"] != "uid-1" || !strings.Contains(body["text"], "express rolled back") {
		t.Errorf("override: %+v %v", got, body)
	}
}
