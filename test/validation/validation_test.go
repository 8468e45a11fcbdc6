package validation

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/rapport-dev/rapport/test/utils"
)

// readSamples returns every object of config/samples.
func readSamples() []*unstructured.Unstructured {
	files, err := filepath.Glob(filepath.Join(utils.RepoRoot(), "config", "samples", "cx_*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(files).NotTo(BeEmpty())
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				Expect(err).To(Equal(io.EOF), "decode %s", f)
				break
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out
}

func newNamespace(prefix string) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// experiment is a valid experiment in YAML; the table below breaks one part of it at a time.
const experiment = `
apiVersion: cx.rapport.dev/v1alpha1
kind: CXExperiment
metadata: {name: checkout}
spec:
  variants:
  - {name: control, control: true, service: {name: checkout-v1, port: 8080}}
  - {name: one-page, service: {name: checkout-v2, port: 8080}}
  segments: [enterprise]
  traffic:
    gatewayAPI: {httpRoute: checkout}
  steps:
  - {weight: 5, minDuration: 10m, maxDuration: 2h}
  - {weight: 50, minDuration: 30m}
  satisfaction:
    maxDrop: "3"
    source: {collector: {}}
`

func decode(doc string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
	return u
}

// edit applies a change to the valid experiment's spec.
func edit(change func(spec map[string]any)) *unstructured.Unstructured {
	u := decode(experiment)
	spec := u.Object["spec"].(map[string]any)
	change(spec)
	return u
}

func set(path string, value any) func(map[string]any) {
	return func(spec map[string]any) {
		parts := strings.Split(path, ".")
		m := spec
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = value
	}
}

func variant(name string, control bool, svc string) map[string]any {
	v := map[string]any{"name": name, "service": map[string]any{"name": svc, "port": int64(8080)}}
	if control {
		v["control"] = true
	}
	return v
}

func steps(weights ...int64) []any {
	out := make([]any, len(weights))
	for i, w := range weights {
		out[i] = map[string]any{"weight": w}
	}
	return out
}

var _ = Describe("CRD validation", func() {
	It("accepts every sample in config/samples", func() {
		ns := newNamespace("samples")
		samples := readSamples()
		kinds := map[string]int{}
		for _, u := range samples {
			u.SetNamespace(ns)
			Expect(k8s.Create(ctx, u)).To(Succeed(), "sample %s %s", u.GetKind(), u.GetName())
			kinds[u.GetKind()]++
		}
		Expect(kinds).To(HaveKey("CXExperiment"))
		Expect(kinds).To(HaveKey("CustomerSegment"))
		Expect(kinds).To(HaveKey("SatisfactionMetric"))
	})

	It("has samples whose experiments name only segments and metrics defined in the samples", func() {
		names := map[string]map[string]bool{"CustomerSegment": {}, "SatisfactionMetric": {}}
		var experiments []*unstructured.Unstructured
		for _, u := range readSamples() {
			if names[u.GetKind()] != nil {
				names[u.GetKind()][u.GetName()] = true
			}
			if u.GetKind() == "CXExperiment" {
				experiments = append(experiments, u)
			}
		}
		for _, u := range experiments {
			segments, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "segments")
			for _, seg := range segments {
				Expect(names["CustomerSegment"]).To(HaveKey(seg), "experiment %s names CustomerSegment %s", u.GetName(), seg)
			}
			if metric, ok, _ := unstructured.NestedString(u.Object, "spec", "satisfaction", "source", "metricRef", "name"); ok {
				Expect(names["SatisfactionMetric"]).To(HaveKey(metric), "experiment %s names SatisfactionMetric %s", u.GetName(), metric)
			}
		}
	})

	It("applies defaults to an experiment", func() {
		ns := newNamespace("defaults")
		u := decode(experiment)
		u.SetNamespace(ns)
		Expect(k8s.Create(ctx, u)).To(Succeed())
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(u.GroupVersionKind())
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
		field := func(path ...string) any {
			v, found, err := unstructured.NestedFieldNoCopy(got.Object, path...)
			Expect(err).NotTo(HaveOccurred())
			Expect(found).To(BeTrue(), "field %v was not defaulted", path)
			return v
		}
		Expect(field("spec", "promotion")).To(Equal("Automatic"))
		Expect(field("spec", "onInconclusive")).To(Equal("Rollback"))
		Expect(field("spec", "satisfaction", "metric")).To(Equal("CSAT"))
		Expect(field("spec", "satisfaction", "confidence")).To(Equal("95"))
		Expect(field("spec", "satisfaction", "minResponses")).To(Equal(int64(100)))
		Expect(field("spec", "satisfaction", "interval")).To(Equal("30s"))
		Expect(field("spec", "steps")).To(HaveLen(2))
	})

	DescribeTable("rejects a bad experiment with a message naming the field and the fix",
		func(obj *unstructured.Unstructured, want string) {
			obj.SetNamespace(newNamespace("bad"))
			err := k8s.Create(ctx, obj)
			Expect(err).To(HaveOccurred(), "the API server accepted it")
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("no control", edit(set("variants", []any{variant("a", false, "a"), variant("b", false, "b")})),
			"no variant has control: true"),
		Entry("two controls", edit(set("variants", []any{variant("a", true, "a"), variant("b", true, "b")})),
			"more than one variant has control: true"),
		Entry("duplicate variant names", edit(set("variants", []any{variant("a", true, "a"), variant("a", false, "b")})),
			"variant names must be unique"),
		Entry("one variant only", edit(set("variants", []any{variant("a", true, "a")})),
			"spec.variants: Invalid value"),
		Entry("nine variants", edit(func(spec map[string]any) {
			var vs []any
			for i := range 9 {
				vs = append(vs, variant(fmt.Sprintf("v%d", i), i == 0, fmt.Sprintf("s%d", i)))
			}
			spec["variants"] = vs
		}), "must have at most 8 items"),
		Entry("two variants on one Service", edit(set("variants", []any{variant("a", true, "same"), variant("b", false, "same")})),
			"each variant needs its own Service"),
		Entry("variant name not a DNS label", edit(set("variants", []any{variant("Control", true, "a"), variant("b", false, "b")})),
			"spec.variants[0].name"),
		Entry("weights over 100 in all", edit(func(spec map[string]any) {
			spec["variants"] = []any{variant("a", true, "a"), variant("b", false, "b"), variant("c", false, "c")}
			spec["steps"] = steps(10, 60)
		}), "weight × (number of variants - 1) must be at most 100"),
		Entry("decreasing weights", edit(set("steps", steps(50, 10))), "weights must not decrease"),
		Entry("zero weight", edit(set("steps", steps(0))), "spec.steps[0].weight"),
		Entry("no steps", edit(set("steps", []any{})), "spec.steps: Invalid value"),
		Entry("21 steps", edit(func(spec map[string]any) {
			ws := make([]int64, 21)
			for i := range ws {
				ws[i] = int64(i + 1)
			}
			spec["steps"] = steps(ws...)
		}), "must have at most 20 items"),
		Entry("minDuration above maxDuration", edit(set("steps", []any{map[string]any{"weight": int64(5), "minDuration": "2h", "maxDuration": "10m"}})),
			"minDuration must not exceed maxDuration"),
		Entry("a duration that does not parse", edit(set("steps", []any{map[string]any{"weight": int64(5), "minDuration": "ten minutes"}})),
			"spec.steps[0].minDuration"),
		Entry("replicas with segments", edit(func(spec map[string]any) {
			spec["variants"] = []any{
				map[string]any{"name": "a", "control": true, "deployment": "a"},
				map[string]any{"name": "b", "deployment": "b"},
			}
			spec["traffic"] = map[string]any{"replicas": map[string]any{"total": int64(10)}}
		}), "replica-ratio traffic cannot tell customers apart"),
		Entry("replicas without deployments", edit(func(spec map[string]any) {
			delete(spec, "segments")
			spec["traffic"] = map[string]any{"replicas": map[string]any{"total": int64(10)}}
		}), "spec.variants[].deployment is required"),
		Entry("replicas fewer than variants", edit(func(spec map[string]any) {
			delete(spec, "segments")
			spec["variants"] = []any{
				map[string]any{"name": "a", "control": true, "deployment": "a"},
				map[string]any{"name": "b", "deployment": "b"},
				map[string]any{"name": "c", "deployment": "c"},
			}
			spec["steps"] = steps(10)
			spec["traffic"] = map[string]any{"replicas": map[string]any{"total": int64(2)}}
		}), "at least the number of variants"),
		Entry("both gatewayAPI and replicas", edit(set("traffic.replicas", map[string]any{"total": int64(10)})),
			"set exactly one of gatewayAPI or replicas"),
		Entry("neither gatewayAPI nor replicas", edit(set("traffic", map[string]any{})),
			"set exactly one of gatewayAPI or replicas"),
		Entry("gatewayAPI without services", edit(set("variants", []any{
			map[string]any{"name": "a", "control": true, "deployment": "a"},
			map[string]any{"name": "b", "deployment": "b"},
		})), "spec.variants[].service is required"),
		Entry("both satisfaction sources", edit(set("satisfaction.source.metricRef", map[string]any{"name": "m"})),
			"set exactly one of collector: {} or metricRef"),
		Entry("no satisfaction source", edit(set("satisfaction.source", map[string]any{})),
			"set exactly one of collector: {} or metricRef"),
		Entry("CSAT minimum below 0", edit(set("satisfaction.minimum", "-5")), "CSAT points are 0..100"),
		Entry("CSAT minimum above 100", edit(set("satisfaction.minimum", "120")), "CSAT points are 0..100"),
		Entry("minimum as a float-like exponent", edit(set("satisfaction.minimum", "8e1")), "spec.satisfaction.minimum"),
		Entry("maxDrop too large", edit(set("satisfaction.maxDrop", "75")), "maxDrop must be between 0 and 50"),
		Entry("negative maxDrop", edit(set("satisfaction.maxDrop", "-3")), "spec.satisfaction.maxDrop"),
		Entry("confidence too low", edit(set("satisfaction.confidence", "50")), "confidence must be between 80 and 99.9"),
		Entry("confidence with a percent sign", edit(set("satisfaction.confidence", "95%")), "spec.satisfaction.confidence"),
		Entry("satisfiedAtOrAbove above the scale", edit(func(spec map[string]any) {
			set("satisfaction.scaleMax", int64(5))(spec)
			set("satisfaction.satisfiedAtOrAbove", int64(6))(spec)
		}), "within the scale 1..scaleMax"),
		Entry("scaleMax 1", edit(set("satisfaction.scaleMax", int64(1))), "spec.satisfaction.scaleMax"),
		Entry("NPS with a 1..5 scale", edit(func(spec map[string]any) {
			set("satisfaction.metric", "NPS")(spec)
			set("satisfaction.scaleMax", int64(5))(spec)
		}), "NPS is always scored 0..10"),
		Entry("NPS with satisfiedAtOrAbove", edit(func(spec map[string]any) {
			set("satisfaction.metric", "NPS")(spec)
			set("satisfaction.satisfiedAtOrAbove", int64(9))(spec)
		}), "applies to CSAT only"),
		Entry("NPS minimum below -100", edit(func(spec map[string]any) {
			set("satisfaction.metric", "NPS")(spec)
			set("satisfaction.minimum", "-150")(spec)
		}), "NPS points are -100..100"),
		Entry("minResponses too small", edit(set("satisfaction.minResponses", int64(3))), "spec.satisfaction.minResponses"),
		Entry("interval too short", edit(set("satisfaction.interval", "100ms")), "interval must be between 1s and 1h"),
		Entry("reserved segment name", edit(set("segments", []any{"all"})), "'all' is reserved"),
		Entry("duplicate segments", edit(set("segments", []any{"a", "a"})), "Duplicate value"),
		Entry("unknown promotion", edit(set("promotion", "Sometimes")), "spec.promotion"),
		Entry("unknown onInconclusive", edit(set("onInconclusive", "Panic")), "spec.onInconclusive"),
		Entry("guardrail without bounds", edit(set("guardrails", []any{map[string]any{
			"name": "errors", "prometheus": map[string]any{"address": "http://p:9090", "query": "up"},
		}})), "set max and/or min"),
		Entry("guardrail with a bad address", edit(set("guardrails", []any{map[string]any{
			"name": "errors", "max": "1", "prometheus": map[string]any{"address": "prometheus:9090", "query": "up"},
		}})), "spec.guardrails[0].prometheus.address"),
		Entry("port out of range", edit(set("variants", []any{variant("a", true, "a"), map[string]any{"name": "b", "service": map[string]any{"name": "b", "port": int64(70000)}}})),
			"spec.variants[1].service.port"),
	)

	DescribeTable("rejects a bad CustomerSegment",
		func(doc, want string) {
			u := decode(doc)
			u.SetNamespace(newNamespace("seg"))
			err := k8s.Create(ctx, u)
			Expect(err).To(HaveOccurred(), "the API server accepted it")
			Expect(err.Error()).To(ContainSubstring(want))
		},
		Entry("no condition", `{apiVersion: cx.rapport.dev/v1alpha1, kind: CustomerSegment, metadata: {name: s}, spec: {match: {}}}`,
			"give at least one condition"),
		Entry("a Cookie header beside cookies", `{apiVersion: cx.rapport.dev/v1alpha1, kind: CustomerSegment, metadata: {name: s},
			spec: {match: {headers: [{name: Cookie, value: x}], cookies: [{name: tier, value: gold}]}}}`,
			"move the condition to spec.match.cookies"),
		Entry("four cookies", `{apiVersion: cx.rapport.dev/v1alpha1, kind: CustomerSegment, metadata: {name: s},
			spec: {match: {cookies: [{name: a, value: "1"}, {name: b, value: "1"}, {name: c, value: "1"}, {name: d, value: "1"}]}}}`,
			"must have at most 3 items"),
		Entry("a header name with a space", `{apiVersion: cx.rapport.dev/v1alpha1, kind: CustomerSegment, metadata: {name: s},
			spec: {match: {headers: [{name: "x tier", value: gold}]}}}`,
			"spec.match.headers[0].name"),
		Entry("an unknown match type", `{apiVersion: cx.rapport.dev/v1alpha1, kind: CustomerSegment, metadata: {name: s},
			spec: {match: {headers: [{name: x-tier, value: gold, type: Prefix}]}}}`,
			"spec.match.headers[0].type"),
	)

	It("rejects a SatisfactionMetric with a bad timeout", func() {
		u := decode(`{apiVersion: cx.rapport.dev/v1alpha1, kind: SatisfactionMetric, metadata: {name: m},
			spec: {prometheus: {address: "http://p:9090", query: "up", timeout: 10m}}}`)
		u.SetNamespace(newNamespace("metric"))
		err := k8s.Create(ctx, u)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("timeout must be more than 0s and at most 2m"))
	})

	It("keeps variants, segments and traffic immutable but lets steps change", func() {
		ns := newNamespace("immutable")
		u := decode(experiment)
		u.SetNamespace(ns)
		Expect(k8s.Create(ctx, u)).To(Succeed())

		changed := u.DeepCopy()
		Expect(unstructured.SetNestedSlice(changed.Object, []any{variant("control", true, "checkout-v1"), variant("two-page", false, "checkout-v3")}, "spec", "variants")).To(Succeed())
		err := k8s.Update(ctx, changed)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.variants is immutable"))

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		changed = u.DeepCopy()
		Expect(unstructured.SetNestedStringSlice(changed.Object, []string{"enterprise", "new-customers"}, "spec", "segments")).To(Succeed())
		err = k8s.Update(ctx, changed)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.segments is immutable"))

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		changed = u.DeepCopy()
		Expect(unstructured.SetNestedField(changed.Object, "checkout-2", "spec", "traffic", "gatewayAPI", "httpRoute")).To(Succeed())
		err = k8s.Update(ctx, changed)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring("spec.traffic is immutable"))

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), u)).To(Succeed())
		changed = u.DeepCopy()
		Expect(unstructured.SetNestedSlice(changed.Object, steps(10, 20, 30), "spec", "steps")).To(Succeed())
		Expect(k8s.Update(ctx, changed)).To(Succeed())
	})
})
