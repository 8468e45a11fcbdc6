// Command rapport-sim simulates customers of an experiment: it reads the
// live split Rapport applied, assigns customers to variants by it, draws
// their satisfaction from a scenario, and posts the answers to Rapport's
// feedback collector. See docs/benchmarks.md and hack/demo/.
//
//	rapport-sim -n shop --experiment checkout-redesign \
//	  --collector http://127.0.0.1:8082 --scenario hack/demo/scenario.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	cxv1 "github.com/rapport-dev/rapport/api/v1alpha1"
	"github.com/rapport-dev/rapport/internal/sim"
)

func main() {
	var (
		ns, experiment, collectorURL, token, tokenSecret, scenarioPath string
		concurrency                                                    int
		duration                                                       time.Duration
		rate                                                           float64
	)
	flag.StringVar(&ns, "n", "default", "Namespace of the experiment.")
	flag.StringVar(&experiment, "experiment", "", "Name of the CXExperiment.")
	flag.StringVar(&collectorURL, "collector", "http://127.0.0.1:8082", "Base URL of Rapport's feedback collector.")
	flag.StringVar(&token, "token", "", "Feedback token (default: read from --token-secret).")
	flag.StringVar(&tokenSecret, "token-secret", "feedback-token", "Secret of the namespace holding the feedback token (key \"token\").")
	flag.StringVar(&scenarioPath, "scenario", "", "Scenario file (YAML): rate, batch, seed, segments with shares and satisfaction per variant.")
	flag.IntVar(&concurrency, "concurrency", 4, "Collector requests in flight.")
	flag.DurationVar(&duration, "duration", 0, "Stop after this long (default: when the experiment stops taking feedback).")
	flag.Float64Var(&rate, "rate", 0, "Override the scenario's responses per second.")
	flag.Parse()
	if experiment == "" || scenarioPath == "" {
		fmt.Fprintln(os.Stderr, "rapport-sim: --experiment and --scenario are required (see --help)")
		os.Exit(2)
	}
	if err := run(ns, experiment, collectorURL, token, tokenSecret, scenarioPath, concurrency, duration, rate); err != nil {
		fmt.Fprintln(os.Stderr, "rapport-sim:", err)
		os.Exit(1)
	}
}

func run(ns, experiment, collectorURL, token, tokenSecret, scenarioPath string, concurrency int, duration time.Duration, rate float64) error {
	scenario, err := sim.LoadScenario(scenarioPath)
	if err != nil {
		return err
	}
	if rate > 0 {
		scenario.Rate = rate
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = cxv1.AddToScheme(scheme)
	_ = gwv1.Install(scheme)
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if token == "" {
		s := &corev1.Secret{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: tokenSecret}, s); err != nil {
			return fmt.Errorf("read the feedback token from Secret %s/%s: %w", ns, tokenSecret, err)
		}
		token = strings.TrimSpace(string(s.Data[cxv1.FeedbackTokenKey]))
	}
	stats, err := sim.Run(ctx, sim.Options{
		Client: c, Namespace: ns, Experiment: experiment, CollectorURL: collectorURL, Token: token,
		Scenario: scenario, Concurrency: concurrency, Duration: duration,
	})
	if err != nil {
		return err
	}
	fmt.Printf("sent %d responses in %d batches over %s (%.0f/s); accepted %d; by code %v; ack latency p50 %s p99 %s\n",
		stats.Sent, stats.Batches, stats.Elapsed.Round(time.Millisecond), float64(stats.Sent)/stats.Elapsed.Seconds(),
		stats.Accepted, stats.Codes, stats.Percentile(0.5).Round(time.Microsecond), stats.Percentile(0.99).Round(time.Microsecond))
	return nil
}
