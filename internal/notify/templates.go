package notify

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/argoproj/notifications-engine/pkg/services"
	"k8s.io/apimachinery/pkg/runtime"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// DocumentAPIVersion identifies the JSON shape of Document, the body of the
// generic webhook. Fields may be added; a field is never renamed, retyped or
// removed without a new version.
const DocumentAPIVersion = "notifications.rapport.dev/v1"

// DocumentKind is the kind of Document.
const DocumentKind = "ExperimentEvent"

// Document is an event as the generic webhook receives it (and as templates
// see it under .event).
type Document struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	ID         string             `json:"id"`
	Trigger    string             `json:"trigger"`
	At         time.Time          `json:"at"`
	Experiment DocumentExperiment `json:"experiment"`
	// EventDetails are inline: segment, variant, reason, responses,
	// evidence, promoted.
	EventDetails
	Message string `json:"message"`
	// ReportURL is the configured link to the report (context.reportURL).
	ReportURL string `json:"reportURL,omitempty"`
	// ReportCommand prints the report from a terminal.
	ReportCommand string `json:"reportCommand"`
}

// DocumentExperiment identifies the experiment of a Document (and of an
// Event).
type DocumentExperiment struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
	Run       int32  `json:"run"`
	Phase     string `json:"phase"`
	Step      int32  `json:"step"`
	Steps     int32  `json:"steps"`
}

// document builds the Document of e.
func document(e Event, at time.Time, reportURL string) Document {
	return Document{
		APIVersion: DocumentAPIVersion, Kind: DocumentKind, ID: e.ID, Trigger: string(e.Trigger), At: at.UTC(),
		Experiment: e.DocumentExperiment, EventDetails: e.EventDetails, Message: e.Message, ReportURL: reportURL,
		ReportCommand: fmt.Sprintf("kubectl cx report %s -n %s", e.Name, e.Namespace),
	}
}

// templateName is the template an event of trigger t is formatted with:
// rapport-rolled-back, rapport-awaiting-promotion, rapport-promoted,
// rapport-stalled, rapport-sample-ratio-mismatch. A ConfigMap key
// template.<name> replaces Rapport's.
func templateName(t Trigger) string {
	return "rapport-" + strings.TrimPrefix(string(t), "on-")
}

// builtinTemplates are Rapport's templates for every trigger: a plain
// message, a Slack attachment, a Teams (Office 365 connector) card, Rapport's
// JSON Document for each webhook service and an Adaptive Card for each
// teams-workflows service. They read the variables of templateVars.
func builtinTemplates(kinds map[string]string) map[string]services.Notification {
	out := map[string]services.Notification{}
	for _, t := range Triggers {
		n := services.Notification{
			Message: "{{ .text }}",
			Slack: &services.SlackNotification{
				Attachments: `[{"color": {{ toJson .color }}, "title": {{ toJson .title }}, "title_link": {{ toJson .reportURL }}, "text": {{ toJson .message }}, "fields": {{ toJson .fields }}, "footer": {{ toJson .footer }}}]`,
			},
			Teams: &services.TeamsNotification{
				Title:      "{{ .title }}",
				Text:       "{{ .message }}",
				ThemeColor: "{{ .hexColor }}",
				Facts:      "{{ toJson .facts }}",
			},
		}
		for name, kind := range kinds {
			switch kind {
			case kindWebhook:
				if n.Webhook == nil {
					n.Webhook = services.WebhookNotifications{}
				}
				n.Webhook[name] = services.WebhookNotification{Method: "POST", Body: "{{ .eventJSON }}"}
			case kindTeamsWorkflows:
				if n.Webhook == nil {
					n.Webhook = services.WebhookNotifications{}
				}
				n.Webhook[name] = services.WebhookNotification{Method: "POST", Body: "{{ .teamsCard }}"}
			}
		}
		out[templateName(t)] = n
	}
	return out
}

// fact is one name/value line of a card.
type fact struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// templateVars are what templates see: the event (.event, as in the
// Document), the experiment (.experiment: metadata, spec, status) and
// ready-made pieces: .title, .message, .text, .color (Slack), .hexColor,
// .fields (Slack), .facts (Teams), .reportURL, .reportCommand, .eventJSON
// (the Document as JSON) and .teamsCard (an Adaptive Card message).
func templateVars(exp *cxv1.CXExperiment, e Event, at time.Time, reportURL string) (map[string]any, error) {
	doc := document(e, at, reportURL)
	docJSON, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	var event map[string]any
	if err := json.Unmarshal(docJSON, &event); err != nil {
		return nil, err
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(exp)
	if err != nil {
		return nil, err
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
	}

	title := fmt.Sprintf("Rapport: %s/%s %s", e.Namespace, e.Name, headline(e))
	facts := []fact{}
	switch e.Trigger {
	case TriggerRolledBack:
		facts = append(facts, fact{"Segment", e.Segment}, fact{"Variant", e.Variant}, fact{"Reason", e.Reason},
			fact{"Step", fmt.Sprintf("%d/%d", e.Step, e.Steps)}, fact{"Responses", strconv.FormatInt(e.Responses, 10)})
		if e.Evidence != "" {
			facts = append(facts, fact{"Evidence", e.Evidence})
		}
	case TriggerPromoted:
		for _, p := range e.Promoted {
			facts = append(facts, fact{"Segment " + p.Segment, p.Variant})
		}
	case TriggerAwaitingPromotion:
		facts = append(facts, fact{"Step", fmt.Sprintf("%d/%d", e.Step, e.Steps)}, fact{"Promote with", fmt.Sprintf("kubectl cx promote %s -n %s", e.Name, e.Namespace)})
	default:
		facts = append(facts, fact{"Reason", e.Reason}, fact{"Phase", e.Phase})
	}
	report := doc.ReportCommand
	if reportURL != "" {
		report = reportURL
	}
	facts = append(facts, fact{"Report", report})
	fields := make([]map[string]any, 0, len(facts))
	for _, f := range facts {
		fields = append(fields, map[string]any{"title": f.Name, "value": f.Value, "short": len(f.Value) < 30})
	}
	color, hex := colors(e.Trigger)
	card, err := teamsCard(title, e.Message, facts, reportURL)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"event": event, "experiment": obj,
		"title": title, "message": e.Message, "text": title + "\n" + e.Message + "\nReport: " + report,
		"color": color, "hexColor": hex, "fields": fields, "facts": facts,
		"reportURL": reportURL, "reportCommand": doc.ReportCommand, "footer": "Rapport · event " + e.ID,
		"eventJSON": string(docJSON), "teamsCard": card,
	}, nil
}

// headline says what happened in a few words.
func headline(e Event) string {
	switch e.Trigger {
	case TriggerRolledBack:
		return fmt.Sprintf("rolled %s back in segment %s", e.Variant, e.Segment)
	case TriggerAwaitingPromotion:
		return "awaits manual promotion"
	case TriggerPromoted:
		return "was promoted"
	case TriggerStalled:
		return "is stalled: " + e.Reason
	case TriggerSampleRatioMismatch:
		return "has a sample-ratio mismatch"
	}
	return string(e.Trigger)
}

// colors are Slack's attachment colour and a hex colour per trigger.
func colors(t Trigger) (slack, hex string) {
	switch t {
	case TriggerRolledBack, TriggerStalled:
		return "danger", "D93F0B"
	case TriggerPromoted:
		return "good", "2EB886"
	}
	return "warning", "DAA038"
}

// teamsCard is a Teams Workflows message carrying an Adaptive Card.
func teamsCard(title, message string, facts []fact, reportURL string) (string, error) {
	type tv struct {
		Title string `json:"title"`
		Value string `json:"value"`
	}
	fs := make([]tv, 0, len(facts))
	for _, f := range facts {
		fs = append(fs, tv{f.Name, f.Value})
	}
	content := map[string]any{
		"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
		"type":    "AdaptiveCard",
		"version": "1.4",
		"body": []any{
			map[string]any{"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": title, "wrap": true},
			map[string]any{"type": "TextBlock", "text": message, "wrap": true},
			map[string]any{"type": "FactSet", "facts": fs},
		},
	}
	if reportURL != "" {
		content["actions"] = []any{map[string]any{"type": "Action.OpenUrl", "title": "Report", "url": reportURL}}
	}
	msg := map[string]any{
		"type": "message",
		"attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content":     content,
		}},
	}
	b, err := json.Marshal(msg)
	return string(b), err
}
