package notify

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"github.com/argoproj/notifications-engine/pkg/api"
	"github.com/argoproj/notifications-engine/pkg/services"
	"github.com/argoproj/notifications-engine/pkg/subscriptions"
	enginetemplates "github.com/argoproj/notifications-engine/pkg/templates"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
)

// Names of the notification configuration, one pair in the manager's
// namespace (for every experiment) and optionally one pair in any
// experiment's namespace (for that namespace's experiments), as in Argo's
// notifications: services, templates and subscriptions in the ConfigMap,
// the credentials they reference ("$key") in the Secret.
const (
	ConfigMapName = "rapport-notifications-cm"
	SecretName    = "rapport-notifications-secret"
)

// AnnotationPrefix of the subscription annotations on a CXExperiment:
// notifications.rapport.dev/subscribe.<trigger>.<service>: <recipients>.
const AnnotationPrefix = "notifications.rapport.dev"

func init() {
	// The engine reads subscription annotations under a process-wide prefix;
	// Rapport is its only user in the manager.
	subscriptions.SetAnnotationPrefix(AnnotationPrefix)
}

// Service types beyond the engine's: teams-workflows posts an Adaptive Card
// to a Microsoft Teams Workflows webhook (the successor of the Office 365
// connectors the engine's "teams" service talks to) through the engine's
// webhook service.
const (
	kindWebhook        = "webhook"
	kindTeamsWorkflows = "teams-workflows"
)

// config is one parsed ConfigMap and Secret pair.
type config struct {
	namespace string
	engine    *api.Config
	// services are the instantiated services by name.
	services map[string]services.NotificationService
	// kinds are the service types by service name.
	kinds map[string]string
	// webhooks are the raw options of webhook and teams-workflows services,
	// kept to build a request per delivery (headers that depend on the body).
	webhooks map[string]webhookOptions
	secret   *corev1.Secret
	// templates formats notifications: Rapport's built-in templates, then
	// the ConfigMap's own (same name: the ConfigMap wins).
	templates enginetemplates.Service
	// defaults are the ConfigMap's own defaultTriggers (nil when unset).
	defaults []string
	// reportURL renders the link to an experiment's report, if configured.
	reportURL *template.Template
	// warnings are problems that do not stop the configuration from working.
	warnings []string
}

// webhookOptions configure a webhook or teams-workflows service. Rapport
// sends these requests itself rather than through the engine's webhook
// service, which logs every request's full URL (Teams Workflows URLs carry
// their credential) through go-retryablehttp's default logger, takes no
// context and cannot sign. The options are the engine's (url, headers,
// basicAuth, insecureSkipVerify), "$key" references included, plus signature.
type webhookOptions struct {
	URL     string `json:"url"`
	Headers []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"headers"`
	BasicAuth *struct {
		Username string `json:"username"`
		Password string `json:"password"`
	} `json:"basicAuth"`
	InsecureSkipVerify bool `json:"insecureSkipVerify"`
	// err is why the options are unusable.
	err error
	// Signature signs the body with HMAC-SHA256.
	Signature *struct {
		// Secret is the key, usually a "$key" reference into the Secret.
		Secret string `json:"secret"`
		// Header carries "sha256=<hex>" (default X-Rapport-Signature-256).
		Header string `json:"header"`
	} `json:"signature"`
}

// contextOptions is the ConfigMap's "context" key.
type contextOptions struct {
	// ReportURL is a Go template of the link to an experiment's report, with
	// .namespace, .name and .run, e.g. a Grafana dashboard URL.
	ReportURL string `json:"reportURL"`
}

// parseConfig reads one ConfigMap and Secret with the engine's parser, after
// Rapport's additions (the teams-workflows service type, webhook signatures,
// the report link) are taken out.
func parseConfig(cm *corev1.ConfigMap, secret *corev1.Secret) (*config, error) {
	if secret == nil {
		secret = &corev1.Secret{}
	}
	where := cm.Namespace + "/" + cm.Name
	c := &config{namespace: cm.Namespace, kinds: map[string]string{}, webhooks: map[string]webhookOptions{}, secret: secret, services: map[string]services.NotificationService{}}
	data := map[string]string{}
	for k, v := range cm.Data {
		switch {
		case strings.HasPrefix(k, "service."):
			parts := strings.Split(k, ".")
			typ, name := "", ""
			switch len(parts) {
			case 2:
				typ, name = parts[1], parts[1]
			case 3:
				typ, name = parts[1], parts[2]
			default:
				return nil, fmt.Errorf("%s: key %q: want service.<type> or service.<type>.<name>", where, k)
			}
			if prev, dup := c.kinds[name]; dup {
				return nil, fmt.Errorf("%s: two services are named %q (%s and %s); give one another name", where, name, prev, typ)
			}
			c.kinds[name] = typ
			if typ == kindWebhook || typ == kindTeamsWorkflows {
				// A broken webhook fails its own deliveries, not the others'.
				o, err := parseWebhook(v, cm.Namespace, secret)
				if err != nil {
					o.err = fmt.Errorf("%s: key %q: %w", where, k, err)
				}
				c.webhooks[name] = o
				continue
			}
			data[k] = v
		case strings.HasPrefix(k, "trigger."):
			c.warnings = append(c.warnings, fmt.Sprintf("%s: key %q is ignored: Rapport's triggers are fixed (%s)", where, k, triggerList()))
		case k == "context":
			var o contextOptions
			if err := yaml.Unmarshal([]byte(v), &o); err != nil {
				return nil, fmt.Errorf("%s: key context: %w", where, err)
			}
			if o.ReportURL != "" {
				t, err := template.New("reportURL").Option("missingkey=error").Parse(o.ReportURL)
				if err != nil {
					return nil, fmt.Errorf("%s: key context: reportURL: %w", where, err)
				}
				c.reportURL = t
			}
		default:
			data[k] = v
		}
	}
	parsed, err := api.ParseConfig(&corev1.ConfigMap{ObjectMeta: cm.ObjectMeta, Data: data}, secret)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c.engine = parsed
	if len(parsed.DefaultTriggers) > 0 {
		c.defaults = parsed.DefaultTriggers
	} else {
		parsed.DefaultTriggers = allTriggers()
	}
	for name, factory := range parsed.Services {
		svc, err := factory()
		if err != nil {
			return nil, fmt.Errorf("%s: service %q (type %s): %w", where, name, c.kinds[name], err)
		}
		c.services[name] = svc
	}
	for _, s := range parsed.Subscriptions {
		for _, t := range s.Triggers {
			if !slices.Contains(Triggers, Trigger(t)) {
				c.warnings = append(c.warnings, fmt.Sprintf("%s: subscriptions name trigger %q, which does not exist (%s)", where, t, triggerList()))
			}
		}
	}
	templates := builtinTemplates(c.kinds)
	for name, t := range parsed.Templates {
		templates[name] = t
	}
	if c.templates, err = enginetemplates.NewService(templates); err != nil {
		return nil, fmt.Errorf("%s: templates: %w", where, err)
	}
	return c, nil
}

func triggerList() string { return strings.Join(allTriggers(), ", ") }

// configs are the configurations that apply to one experiment: its
// namespace's (local) and the manager's (global). Either may be nil.
type configs struct {
	local, global *config
}

// loadConfigs reads the ConfigMap and Secret of the experiment's namespace
// and of the global namespace (when set and different).
func loadConfigs(ctx context.Context, r client.Reader, namespace, global string) (*configs, error) {
	var out configs
	var err error
	if out.local, err = loadConfig(ctx, r, namespace); err != nil {
		return nil, err
	}
	if global != "" && global != namespace {
		if out.global, err = loadConfig(ctx, r, global); err != nil {
			return nil, err
		}
	} else if global == namespace {
		out.global, out.local = out.local, nil
	}
	return &out, nil
}

func loadConfig(ctx context.Context, r client.Reader, namespace string) (*config, error) {
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: ConfigMapName}, cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("read configmap %s/%s: %w", namespace, ConfigMapName, err)
	}
	secret := &corev1.Secret{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: SecretName}, secret); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("read secret %s/%s: %w", namespace, SecretName, err)
		}
		secret = &corev1.Secret{}
	}
	return parseConfig(cm, secret)
}

// each calls f on the configurations present, local first.
func (c *configs) each(f func(*config)) {
	for _, x := range []*config{c.local, c.global} {
		if x != nil {
			f(x)
		}
	}
}

// service finds the configuration that defines a service: the namespace's
// first, then the global one.
func (c *configs) service(name string) *config {
	var found *config
	c.each(func(x *config) {
		if _, ok := x.kinds[name]; ok && found == nil {
			found = x
		}
	})
	return found
}

// destinations are the subscribers of trigger t for exp: the experiment's
// subscription annotations, then the subscriptions of its namespace's
// ConfigMap and of the global one (each with its label selector), without
// duplicates, in a stable order.
func (c *configs) destinations(exp *cxv1.CXExperiment, t Trigger) []services.Destination {
	defaults := defaultTriggers(c)
	serviceDefaults := map[string][]string{}
	c.each(func(x *config) {
		for k, v := range x.engine.ServiceDefaultTriggers {
			if _, ok := serviceDefaults[k]; !ok {
				serviceDefaults[k] = v
			}
		}
	})
	var all []services.Destination
	all = append(all, subscriptions.NewAnnotations(exp.Annotations).GetDestinations(defaults, serviceDefaults)[string(t)]...)
	c.each(func(x *config) {
		all = append(all, x.engine.GetGlobalDestinations(exp.Labels)[string(t)]...)
	})
	seen := map[services.Destination]bool{}
	var out []services.Destination
	for _, d := range all {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Recipient < out[j].Recipient
	})
	return out
}

// defaultTriggers are the triggers of a subscription annotation that names
// none: the namespace's defaultTriggers, else the global ones, else every
// trigger.
func defaultTriggers(c *configs) []string {
	var out []string
	c.each(func(x *config) {
		if out == nil && len(x.defaults) > 0 {
			out = x.defaults
		}
	})
	if out == nil {
		out = allTriggers()
	}
	return out
}

func allTriggers() []string {
	out := make([]string, len(Triggers))
	for i, t := range Triggers {
		out[i] = string(t)
	}
	return out
}

// secretRef matches "$key" references into the Secret, as the engine does.
var secretRef = regexp.MustCompile(`[$][\w-]+`)

// parseWebhook reads a webhook service's options, resolving "$key"
// references into the Secret the way the engine does for its services.
func parseWebhook(v, namespace string, secret *corev1.Secret) (webhookOptions, error) {
	var o webhookOptions
	if err := yaml.UnmarshalStrict([]byte(v), &o); err != nil {
		return o, err
	}
	var missing []string
	resolve := func(s *string) {
		*s = secretRef.ReplaceAllStringFunc(*s, func(ref string) string {
			val, ok := secret.Data[ref[1:]]
			if !ok {
				missing = append(missing, ref)
				return ref
			}
			return string(val)
		})
	}
	resolve(&o.URL)
	for i := range o.Headers {
		resolve(&o.Headers[i].Value)
	}
	if o.BasicAuth != nil {
		resolve(&o.BasicAuth.Username)
		resolve(&o.BasicAuth.Password)
	}
	if o.Signature != nil {
		if o.Signature.Secret == "" {
			return o, fmt.Errorf("signature.secret is empty; reference a key of Secret %s, e.g. $webhook-hmac", SecretName)
		}
		resolve(&o.Signature.Secret)
	}
	if len(missing) > 0 {
		return o, fmt.Errorf("%s not found in Secret %s/%s", strings.Join(missing, ", "), namespace, SecretName)
	}
	if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, fmt.Errorf("url must be an http(s) URL")
	}
	return o, nil
}

// reportURL renders the report link of exp with the first configuration
// that defines one.
func (c *configs) reportURL(e Event) (string, error) {
	var t *template.Template
	c.each(func(x *config) {
		if t == nil {
			t = x.reportURL
		}
	})
	if t == nil {
		return "", nil
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]any{"namespace": e.Namespace, "name": e.Name, "run": e.Run}); err != nil {
		return "", fmt.Errorf("context.reportURL: %w", err)
	}
	return b.String(), nil
}

// warnings of every configuration.
func (c *configs) warnings() []string {
	var out []string
	c.each(func(x *config) { out = append(out, x.warnings...) })
	return out
}
