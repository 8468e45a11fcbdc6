// Command manager runs Rapport: the experiment controllers and the feedback
// collector, in one process.
package main

import (
	"crypto/tls"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	corev1 "k8s.io/api/core/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/collector"
	"github.com/rapport-dev/rapport/internal/controller"
	"github.com/rapport-dev/rapport/internal/gctune"
	"github.com/rapport-dev/rapport/internal/measure"
	collectorsource "github.com/rapport-dev/rapport/internal/measure/collector"
	promsource "github.com/rapport-dev/rapport/internal/measure/prometheus"
	"github.com/rapport-dev/rapport/internal/notify"
)

var (
	scheme   = runtime.NewScheme()
	setupLog = ctrl.Log.WithName("setup")
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(cxv1.AddToScheme(scheme))
	utilruntime.Must(gwv1.Install(scheme))
}

func main() {
	var (
		metricsAddr, probeAddr, collectorAddr string
		pprofAddr                             string
		metricsCertPath, metricsCertName      string
		metricsCertKey                        string
		collectorCert, collectorKey           string
		collectorRate, collectorPublicRate    float64
		collectorBurst, collectorMaxBatch     int
		collectorPublicBurst                  int
		collectorClientIPHeader, surveyMonkey string
		leaderElect, secureMetrics, http2     bool
		leaseDuration, renewDeadline, retry   time.Duration
		leaderElectionNamespace               string
		workers                               int
		notifications                         bool
		notificationsNamespace                string
		notificationsMaxAge, notifyTimeout    time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "Address of the metrics endpoint, e.g. :8443 (HTTPS) or :8080 (HTTP with --metrics-secure=false). 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address of Go's profiling endpoints (/debug/pprof/), e.g. 127.0.0.1:6060, for diagnosing CPU or memory use; unauthenticated, so bind it to loopback. Empty: off.")
	flag.StringVar(&collectorAddr, "collector-bind-address", ":8082", "Address of the feedback collector. 0 disables it.")
	flag.StringVar(&collectorCert, "collector-tls-cert-file", "", "TLS certificate of the collector (PEM); with --collector-tls-key-file turns on HTTPS.")
	flag.StringVar(&collectorKey, "collector-tls-key-file", "", "TLS private key of the collector (PEM).")
	flag.Float64Var(&collectorRate, "collector-rate-limit", 200, "Requests per second allowed per feedback token (negative: unlimited).")
	flag.IntVar(&collectorBurst, "collector-rate-burst", 400, "Burst of requests allowed per feedback token.")
	flag.IntVar(&collectorMaxBatch, "collector-max-batch", 1000, "Most responses one collector request may carry.")
	flag.Float64Var(&collectorPublicRate, "collector-public-rate-limit", collector.DefaultPublicRateLimit, "Requests per second allowed per client address at the public (browser) endpoint (negative: unlimited).")
	flag.IntVar(&collectorPublicBurst, "collector-public-rate-burst", collector.DefaultPublicRateBurst, "Burst of requests allowed per client address at the public (browser) endpoint.")
	flag.StringVar(&collectorClientIPHeader, "collector-client-ip-header", "", "Header set by a trusted proxy in front of the collector whose right-most address is the client's (e.g. X-Forwarded-For), for the public endpoint's rate limit. Empty: the connection's address.")
	flag.StringVar(&surveyMonkey, "collector-surveymonkey-api-url", collector.DefaultSurveyMonkeyAPI, "Base URL of the SurveyMonkey API the collector reads answers from.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers (the collector runs on every replica).")
	flag.IntVar(&workers, "max-concurrent-reconciles", 4, "Experiments reconciled in parallel (one experiment is never reconciled twice at once).")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease (default: the pod's namespace; required outside a cluster).")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a non-leader waits before taking over an expired lease.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	flag.DurationVar(&retry, "leader-elect-retry-period", 2*time.Second, "How often leader election is retried.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS with authentication and authorisation.")
	flag.StringVar(&metricsCertPath, "metrics-cert-path", "", "Folder of the certificate the metrics endpoint serves (e.g. a mounted kubernetes.io/tls Secret), watched for rotation. Empty: a self-signed certificate generated at start-up.")
	flag.StringVar(&metricsCertName, "metrics-cert-name", "tls.crt", "File name of the metrics certificate in --metrics-cert-path.")
	flag.StringVar(&metricsCertKey, "metrics-cert-key", "tls.key", "File name of the metrics private key in --metrics-cert-path.")
	flag.BoolVar(&http2, "enable-http2", false, "Allow HTTP/2 on the metrics endpoint (off by default: CVE-2023-44487, CVE-2023-39325).")
	flag.BoolVar(&notifications, "notifications", true, "Deliver notifications (Slack, Teams, webhooks) of rollbacks, promotions and stalls to the subscriptions of rapport-notifications-cm ConfigMaps.")
	flag.StringVar(&notificationsNamespace, "notifications-namespace", "", "Namespace of the global rapport-notifications-cm ConfigMap and -secret Secret (default: the pod's namespace).")
	flag.DurationVar(&notificationsMaxAge, "notifications-max-age", notify.DefaultMaxAge, "Undelivered notifications are retried until their event is this old; older events are not sent when first seen.")
	flag.DurationVar(&notifyTimeout, "notifications-timeout", notify.DefaultTimeout, "Longest wait for a channel to accept one notification.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	// Before anything allocates much: GOGC and the soft memory limit (see
	// internal/gctune and docs/operations.md#memory-and-garbage-collection).
	gc, gcErr := gctune.Apply()
	if gcErr != nil {
		setupLog.Error(gcErr, "could not read the container's memory limit; no soft memory limit is set (set GOMEMLIMIT to give one)")
	}
	setupLog.Info("garbage collector", "settings", strings.Join(gc.Reasons, "; "))

	var tlsOpts []func(*tls.Config)
	if !http2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: tlsOpts}
	if secureMetrics {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	// A certificate Prometheus can verify (the ServiceMonitor then needs no
	// insecureSkipVerify), reloaded when the Secret behind it rotates.
	var metricsCerts *certwatcher.CertWatcher
	if metricsCertPath != "" {
		var err error
		metricsCerts, err = certwatcher.New(filepath.Join(metricsCertPath, metricsCertName), filepath.Join(metricsCertPath, metricsCertKey))
		if err != nil {
			setupLog.Error(err, "unable to load the metrics certificate", "path", metricsCertPath)
			os.Exit(1)
		}
		metricsOpts.TLSOpts = append(slices.Clone(tlsOpts), func(c *tls.Config) { c.GetCertificate = metricsCerts.GetCertificate })
	}

	tokenSelector := labels.SelectorFromSet(labels.Set{cxv1.LabelFeedbackToken: "true"})
	cfg := ctrl.GetConfigOrDie()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsOpts,
		WebhookServer:           webhook.NewServer(webhook.Options{TLSOpts: tlsOpts}),
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "rapport.cx.rapport.dev",
		LeaderElectionNamespace: leaderElectionNamespace,
		// The controllers stop at once when leadership is lost, so a new
		// leader never races an old one on the same routes.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retry,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only feedback-token Secrets are cached; Prometheus token
			// Secrets are read on demand.
			&corev1.Secret{}: {Label: tokenSelector},
		}},
	})
	if err != nil {
		setupLog.Error(err, "unable to create the manager")
		os.Exit(1)
	}

	if metricsCerts != nil {
		if err := mgr.Add(metricsCerts); err != nil {
			setupLog.Error(err, "unable to watch the metrics certificate")
			os.Exit(1)
		}
	}

	gatewayAPI := true
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: gwv1.GroupName, Kind: "HTTPRoute"}, gwv1.GroupVersion.Version); err != nil {
		gatewayAPI = false
		setupLog.Info("the Gateway API HTTPRoute CRD (v1) is not installed: experiments with spec.traffic.gatewayAPI will wait with a condition until it is and Rapport restarts", "error", err.Error())
	}

	var collectorSource measure.Source
	if collectorAddr != "0" && collectorAddr != "" {
		srv, err := collector.New(collector.Options{
			Addr: collectorAddr, Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Informers: mgr.GetCache(),
			MaxBatch: collectorMaxBatch, RateLimit: collectorRate, RateBurst: collectorBurst,
			PublicRateLimit: collectorPublicRate, PublicRateBurst: collectorPublicBurst,
			ClientIPHeader: collectorClientIPHeader, SurveyMonkeyAPI: surveyMonkey,
			TLSCertFile: collectorCert, TLSKeyFile: collectorKey,
			KeysInList: keysInList(cfg),
			Log:        ctrl.Log.WithName("collector"),
		})
		if err != nil {
			setupLog.Error(err, "unable to configure the feedback collector")
			os.Exit(1)
		}
		if err := mgr.Add(srv); err != nil {
			setupLog.Error(err, "unable to add the feedback collector")
			os.Exit(1)
		}
		collectorSource = &collectorsource.Source{Reader: mgr.GetClient()}
	}

	if err := (&controller.CXExperimentReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("rapport"),
		Clock:     clock.RealClock{},
		Collector: collectorSource,
		Prometheus: func(q cxv1.PrometheusQuery, token string) (measure.Source, error) {
			return promsource.NewSource(q, token)
		},
		Guardrails: promsource.NewGuardrails(),
		GatewayAPI: gatewayAPI,

		MaxConcurrentReconciles: workers,
	}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create the controller", "controller", "CXExperiment")
		os.Exit(1)
	}
	if err := (&controller.ValidationReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create the controllers", "controller", "CustomerSegment, SatisfactionMetric")
		os.Exit(1)
	}

	if notifications {
		if notificationsNamespace == "" {
			notificationsNamespace = podNamespace()
		}
		if err := (&notify.Notifier{
			Namespace: notificationsNamespace, MaxAge: notificationsMaxAge, Timeout: notifyTimeout,
			Recorder: mgr.GetEventRecorder("rapport-notifications"),
		}).SetupWithManager(mgr); err != nil {
			setupLog.Error(err, "unable to create the controller", "controller", notify.ControllerName)
			os.Exit(1)
		}
	}
	if err := (&controller.FeedbackSourceReconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader()}).SetupWithManager(mgr); err != nil {
		setupLog.Error(err, "unable to create the controller", "controller", "FeedbackSource")
		os.Exit(1)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up the health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		setupLog.Error(err, "unable to set up the ready check")
		os.Exit(1)
	}

	setupLog.Info("starting the manager", "collector", collectorAddr, "gatewayAPI", gatewayAPI, "leaderElection", leaderElect,
		"notifications", notifications, "notificationsNamespace", notificationsNamespace)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		setupLog.Error(err, "problem running the manager")
		os.Exit(1)
	}
}

// podNamespace is the namespace the manager runs in: POD_NAMESPACE, else the
// namespace of its ServiceAccount, else "" (outside a cluster).
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return ""
}

// keysInList reports whether the collector must keep idempotency-key
// digests in the deprecated spec.recentKeys list: the ResponseTally CRD the
// API server serves lacks spec.recentKeyDigests (it would drop the field
// from every write, and every retry would count again), or that could not
// be checked (both CRDs store the list). The published schema follows a
// CRD update by a moment, so the check is tried three times, a second apart.
func keysInList(cfg *rest.Config) bool {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	for attempt := 0; dc != nil && attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Second)
		}
		var hasDigests bool
		if hasDigests, err = collector.TallySchemaHasDigests(dc); err == nil && hasDigests {
			return false
		}
	}
	if err != nil {
		setupLog.Error(err, "unable to check the ResponseTally schema: idempotency keys are kept in the deprecated spec.recentKeys (the last 1,024), "+
			"which every version of the CRD stores; restart the manager once the check can run")
		return true
	}
	setupLog.Error(nil, "the installed ResponseTally CRD is older than this manager (no spec.recentKeyDigests): "+
		"idempotency keys are kept in the deprecated spec.recentKeys (the last 1,024) until the CRDs are upgraded and the manager restarted; "+
		"apply the chart's CRDs, see docs/operations.md#upgrade")
	return true
}
