package argocd

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// Actions are the resource actions of CXExperiment, in the order Argo CD
// lists them.
var Actions = []string{"pause", "resume", "promote", "abort", "retry"}

// Keys of argocd-cm that carry the customizations of CXExperiment.
const (
	HealthKey  = "resource.customizations.health.cx.rapport.dev_CXExperiment"
	ActionsKey = "resource.customizations.actions.cx.rapport.dev_CXExperiment"
)

// actionsConfig is the value of ActionsKey, as Argo CD reads it
// (ResourceActions in its API).
type actionsConfig struct {
	DiscoveryLua string             `json:"discovery.lua"`
	Definitions  []actionDefinition `json:"definitions"`
}

type actionDefinition struct {
	Name      string `json:"name"`
	ActionLua string `json:"action.lua"`
}

// ConfigMap renders config/argocd/argocd-cm.yaml: a patch of argocd-cm that
// registers health.lua and the actions from config/argocd.
func ConfigMap() ([]byte, error) {
	health, err := Script("health.lua")
	if err != nil {
		return nil, err
	}
	discovery, err := Script("actions/discovery.lua")
	if err != nil {
		return nil, err
	}
	cfg := actionsConfig{DiscoveryLua: discovery}
	for _, a := range Actions {
		s, err := Script("actions/" + a + "/action.lua")
		if err != nil {
			return nil, err
		}
		cfg.Definitions = append(cfg.Definitions, actionDefinition{Name: a, ActionLua: s})
	}
	actions, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", ActionsKey, err)
	}
	cm := map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":   "argocd-cm",
			"labels": map[string]any{"app.kubernetes.io/part-of": "argocd"},
		},
		"data": map[string]any{HealthKey: health, ActionsKey: string(actions)},
	}
	body, err := yaml.Marshal(cm)
	if err != nil {
		return nil, fmt.Errorf("render argocd-cm: %w", err)
	}
	header := "# Generated from config/argocd/*.lua by `go test ./test/argocd -update`; do not edit.\n" +
		"# Merge into Argo CD's argocd-cm (docs/integrations.md#argo-cd-and-flux):\n" +
		"#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm.yaml\n"
	return append([]byte(header), body...), nil
}
