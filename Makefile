# Rapport — a Kubernetes operator for customer-experience experiment rollouts.
# Run `make help` for the targets.

IMG ?= rapport-controller:dev
GO ?= go
SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Pinned tools, installed into ./bin with `go install` (see docs/development.md).
LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
GOLANGCI_LINT_VERSION ?= v2.15.0
CRD_REF_DOCS_VERSION ?= v0.2.0
HELM_VERSION ?= v3.22.0
# goreleaser v2.18 needs Go 1.27, and v2.17 needs a module the Go module proxy refuses
# (go.digitalxero.dev/go-msix, 403); v2.16.0 builds with Go 1.26.
GORELEASER_VERSION ?= v2.16.0
BENCHSTAT_VERSION ?= v0.0.0-20260908200009-22c9c6c9d4da
# The envtest control plane (kube-apiserver, etcd, kubectl) is built from Go
# modules by hack/envtest-assets.sh into ./bin/k8s/$(K8S_VERSION).
K8S_VERSION ?= 1.37.2
ETCD_VERSION ?= 3.6.16
GATEWAY_API_VERSION ?= v1.6.3
# Traefik, the Gateway API proxy of the e2e suite, the wire benchmark and the
# demo, built from its Go module by hack/traefik-bin.sh into ./bin.
TRAEFIK_VERSION ?= v3.6.12

CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs-$(CRD_REF_DOCS_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
GORELEASER ?= $(LOCALBIN)/goreleaser-$(GORELEASER_VERSION)
BENCHSTAT ?= $(LOCALBIN)/benchstat

export K8S_VERSION ETCD_VERSION TRAEFIK_VERSION

# Go test flags; `make test TEST_FLAGS=-v` for verbose output.
TEST_FLAGS ?=
# Packages whose tests need no control plane.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e /test/e2e -e /internal/controller -e /test/reliability -e /test/manifests -e /test/validation -e /internal/cli -e /internal/collector/integration -e /internal/notify/integration)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from kubebuilder markers into config/.
	$(CONTROLLER_GEN) rbac:roleName=rapport-manager-role crd paths="./api/..." paths="./internal/..." paths="./cmd/..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart carries copies of the generated CRDs and RBAC and of the alerts and dashboard (test/manifests checks them).
	cp config/crd/bases/*.yaml charts/rapport/crds/
	cp config/rbac/role.yaml charts/rapport/files/role.yaml
	cp config/prometheus/rules.yaml charts/rapport/files/rules.yaml
	cp config/grafana/rapport-dashboard.json charts/rapport/files/rapport-dashboard.json

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: api-docs
api-docs: crd-ref-docs ## Generate the API reference docs/api.md from the Go types.
	$(CRD_REF_DOCS) --source-path=./api --config=hack/crd-ref-docs/config.yaml --renderer=markdown --output-path=docs/api.md
	@# The renderer sets a list item's pattern as text, where brackets followed
	@# by parentheses read as a link: set it in code, as a field's pattern is.
	sed -i 's/items:Pattern: \([^<`]*[^ <`]\) <br \/>/items:Pattern: `\1` <br \/>/g' docs/api.md

.PHONY: helm-lint
helm-lint: helm ## Lint the Helm chart.
	$(HELM) lint --strict charts/rapport

# Where release artefacts go (gitignored).
DIST ?= dist

.PHONY: helm-package
helm-package: helm ## Lint and package the Helm chart into $(DIST)/charts (CI keeps it as an artefact).
	@mkdir -p $(DIST)/charts
	$(HELM) lint --strict charts/rapport
	$(HELM) package charts/rapport --destination $(DIST)/charts

.PHONY: release-check
release-check: goreleaser ## Check .goreleaser.yaml with the pinned goreleaser.
	$(GORELEASER) check

.PHONY: fmt
fmt: ## Run gofmt on the code (including files behind build tags, e.g. the benchmarks).
	gofmt -l -w api cmd hack internal test

.PHONY: vet
vet: ## Run go vet (also on the benchmarks behind the bench build tag).
	$(GO) vet ./...
	$(GO) vet -tags bench ./test/bench/...

.PHONY: lint
lint: golangci-lint ## Run golangci-lint (pinned) with .golangci.yml.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate api-docs ## Fail if generated files are not up to date.
	@if [ -n "$$(git status --porcelain -- api config docs/api.md charts)" ]; then \
		echo "Generated files are out of date; run 'make manifests generate api-docs' and commit:"; \
		git status --porcelain -- api config docs/api.md charts; git diff --stat -- api config docs/api.md charts; exit 1; fi

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kube-controller-manager (what the tests need) into ./bin/k8s (cached).
	@hack/envtest-assets.sh kube-apiserver etcd kube-controller-manager >/dev/null

.PHONY: control-plane-assets
control-plane-assets: ## Build kube-apiserver, etcd and kubectl (for the demo) into ./bin/k8s (cached).
	@hack/envtest-assets.sh kube-apiserver etcd kubectl >/dev/null

.PHONY: traefik-bin
traefik-bin: ## Build Traefik (the e2e suite's Gateway API proxy) from the Go module proxy into ./bin (cached).
	@hack/traefik-bin.sh >/dev/null

.PHONY: test
test: manifests generate fmt vet envtest-assets prometheus-bin traefik-bin chromium-bin helm kustomize ## Run all tests: unit, envtest suites, Prometheus provider, browser, reliability, e2e through a real proxy.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd kube-controller-manager 2>/dev/null)" PROMETHEUS_BIN="$$(hack/prometheus-bin.sh)" CHROMIUM_BIN="$$(hack/chromium-bin.sh)" \
		TRAEFIK_BIN="$$(hack/traefik-bin.sh 2>/dev/null)" \
		$(GO) test ./... -coverprofile cover.out -timeout 30m $(TEST_FLAGS)
	@# The benchmarks' own helpers that need no cluster (the load generator's HTTP).
	$(GO) test -tags bench ./test/bench/cluster/ -run '^(TestLoadGeneratorSpeaksHTTP|TestPresign|TestDecimalLen|TestAppendAnswer|TestBusyTime|TestHostRoundTripMicros)$$' $(TEST_FLAGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=10000x

# Fuzzers: package and target. Their seed corpora (f.Add and testdata/fuzz)
# also run as plain tests in `go test`.
FUZZERS = internal/collector:FuzzDecode internal/feedback:FuzzDecodeJSON internal/measure/prometheus:FuzzRender \
	internal/routing/gatewayapi:FuzzCookieRegex internal/routing/gatewayapi:FuzzRenderChildRules \
	internal/feedback:FuzzDecodeForAMapping internal/collector:FuzzMayExist api/v1alpha1:FuzzIsDecimal \
	internal/feedback:FuzzNativesMatchCEL internal/collector:FuzzDecodePublicAnswer internal/collector:FuzzIsRespondent \
	internal/feedback:FuzzIndexAsDecode
# A duration (1m) or a number of executions (10000x). make test counts
# executions: Go 1.26's coordinator can fail a run that ends on a duration
# with a bare "context deadline exceeded" and no crasher (golang/go#75804,
# fixed in Go 1.27), which failed a fresh-clone make test here once; a count
# takes no deadline. 10,000 executions take 5-10 s per fuzzer here (2 cores, baseline included).
FUZZTIME ?= 1m

.PHONY: fuzz
fuzz: ## Run each fuzzer for FUZZTIME: a duration or a count (default 1m; make test runs 10000x each).
	@for f in $(FUZZERS); do pkg=$${f%%:*}; target=$${f##*:}; \
		echo "fuzz $$target in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test ./$$pkg -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) || exit 1; done

.PHONY: test-e2e
test-e2e: envtest-assets traefik-bin ## Run only the e2e suite (real traffic through Traefik, in a private network namespace).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd 2>/dev/null)" TRAEFIK_BIN="$$(hack/traefik-bin.sh 2>/dev/null)" \
		$(GO) test ./test/e2e/ -count=1 -timeout 20m $(TEST_FLAGS)

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	$(GO) test $(UNIT_PKGS) $(TEST_FLAGS)

.PHONY: prometheus-bin
prometheus-bin: ## Install Debian's prometheus package when no prometheus binary is found.
	@hack/prometheus-bin.sh >/dev/null

.PHONY: chromium-bin
chromium-bin: ## Install Debian's chromium package (for the survey intercept's browser tests) when no chromium is found.
	@hack/chromium-bin.sh >/dev/null

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager, kubectl-cx and rapport-sim into ./bin.
	$(GO) build -o bin/manager ./cmd
	$(GO) build -o bin/kubectl-cx ./cmd/kubectl-cx
	$(GO) build -o bin/rapport-sim ./cmd/rapport-sim

.PHONY: run
run: manifests generate fmt vet ## Run the manager against the cluster of your kubeconfig.
	$(GO) run ./cmd

.PHONY: docker-build
docker-build: ## Build the manager image (needs a Docker engine).
	docker build -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push the manager image.
	docker push ${IMG}

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

KUBECTL ?= kubectl

.PHONY: install
install: manifests kustomize ## Install the CRDs into the cluster of your kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Remove the CRDs (and every experiment) from the cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy the controller with image $(IMG).
	cd config/manager && $(KUSTOMIZE) edit set image controller=${IMG}
	$(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize ## Remove the controller.
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -f -

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_GEN_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Install kustomize.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint.
$(GOLANGCI_LINT): | $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

.PHONY: crd-ref-docs
crd-ref-docs: $(CRD_REF_DOCS) ## Install crd-ref-docs.
$(CRD_REF_DOCS): | $(LOCALBIN)
	$(call go-install-tool,$(CRD_REF_DOCS),github.com/elastic/crd-ref-docs,$(CRD_REF_DOCS_VERSION))

.PHONY: helm
helm: $(HELM) ## Install helm.
$(HELM): | $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/v3/cmd/helm,$(HELM_VERSION))

.PHONY: goreleaser
goreleaser: $(GORELEASER) ## Install goreleaser.
$(GORELEASER): | $(LOCALBIN)
	$(call go-install-tool,$(GORELEASER),github.com/goreleaser/goreleaser/v2,$(GORELEASER_VERSION))

.PHONY: benchstat
benchstat: $(BENCHSTAT) ## Install benchstat.
$(BENCHSTAT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)

# go-install-tool installs a Go module binary into ./bin with its version in
# the file name, so that a version bump reinstalls it.
# $1 target path, $2 package, $3 version
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Installing $${package}" ;\
rm -f $(1) ;\
GOBIN=$(LOCALBIN) $(GO) install $${package} ;\
mv $(LOCALBIN)/$$(basename "$$(echo "$(2)" | sed "s/\/v[0-9]\+$$//")") $(1) ;\
}
endef

##@ Demo and benchmarks

.PHONY: demo
demo: control-plane-assets ## Run Rapport on a local control plane with a shop and real customers through Traefik (DEMO_CLUSTER=existing uses KUBECONFIG).
	$(GO) build -o bin/manager ./cmd
	$(GO) build -o bin/rapport-demo ./hack/demo
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd kubectl 2>/dev/null)" \
		CHROMIUM_BIN="$$([ "$$DEMO_CLUSTER" = existing ] || hack/chromium-bin.sh || echo "demo: no Chromium, the survey intercept part is skipped" >&2)" bin/rapport-demo

BENCH_OUT ?= docs/benchmarks

.PHONY: bench
bench: envtest-assets benchstat traefik-bin ## Run every benchmark and write the figures to $(BENCH_OUT) (see docs/benchmarks.md).
	$(GO) test ./internal/analysis/ ./internal/collector/ ./internal/feedback/ -run '^$$' -bench . -benchmem -count 6 > $(BENCH_OUT)/go-bench.txt
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd 2>/dev/null)" \
		$(GO) test ./internal/collector/integration/ -run '^$$' -bench Commit -benchtime 300x -count 6 >> $(BENCH_OUT)/go-bench.txt
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd 2>/dev/null)" \
		$(GO) test ./internal/collector/integration/ -run '^$$' -bench Feedback -benchtime 20000x -count 3 >> $(BENCH_OUT)/go-bench.txt
	$(BENCHSTAT) $(BENCH_OUT)/go-bench.txt | tee $(BENCH_OUT)/go-bench-stat.txt
	BENCH_OUT=$(BENCH_OUT)/statistics.md $(GO) test -tags bench ./test/bench/stats/ -run TestStatistics -v -timeout 300m
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd 2>/dev/null)" BENCH_OUT=$(BENCH_OUT) \
		$(GO) test -tags bench ./test/bench/cluster/ -run . -v -timeout 90m
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh kube-apiserver etcd 2>/dev/null)" TRAEFIK_BIN="$$(hack/traefik-bin.sh 2>/dev/null)" BENCH_OUT=$(BENCH_OUT) \
		$(GO) test -tags bench ./test/bench/wire/ -run TestTimeToSafety -v -timeout 30m
