#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, etcd, kubectl) from Go modules
# into ./bin/k8s/<version>/ and prints that folder on stdout.
#
# Why: setup-envtest and release downloads are unreachable from our build machines,
# while the Go module proxy is. The recipe is described in docs/development.md.
#
# Idempotent: a binary that exists with the expected version stamp is not rebuilt.
# Honours KUBEBUILDER_ASSETS: when it is set and holds kube-apiserver and etcd,
# that folder is printed and nothing is built.
#
# Usage: hack/envtest-assets.sh [binary...]
#   binaries: kube-apiserver, etcd, kubectl, kube-controller-manager
#   (default: kube-apiserver etcd kubectl). The tests need only the first two.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${ENVTEST_ASSETS_DIR:-$ROOT/bin/k8s/$K8S_VERSION}"
WANT=("$@")
(( ${#WANT[@]} > 0 )) || WANT=(kube-apiserver etcd kubectl)
wants() { local b; for b in "${WANT[@]}"; do [[ "$b" == "$1" ]] && return 0; done; return 1; }

log() { echo "envtest-assets: $*" >&2; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "${KUBEBUILDER_ASSETS}/kube-apiserver" && -x "${KUBEBUILDER_ASSETS}/etcd" ]]; then
  log "using KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS}"
  echo "${KUBEBUILDER_ASSETS}"
  exit 0
fi

mkdir -p "$DEST"
minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#*.}"

need=()
for b in kube-apiserver kubectl kube-controller-manager; do
  wants "$b" || continue
  if [[ ! -x "$DEST/$b" || ! -f "$DEST/.$b.v$K8S_VERSION" ]]; then need+=("$b"); fi
done

if (( ${#need[@]} > 0 )); then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "building ${need[*]} v$K8S_VERSION from k8s.io/kubernetes (cold: ~10-15 min on 2 cores)"
  staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
    cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
    cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
    kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
    mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)
  {
    echo "module assets"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    for s in "${staging[@]}"; do echo "replace k8s.io/$s => k8s.io/$s $staging_version"; done
  } > "$work/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package assets"
    echo
    echo "import ("
    for b in "${need[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$b\""; done
    echo ")"
  } > "$work/tools.go"
  log "resolving modules (go mod tidy)"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >&2)
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  for b in "${need[@]}"; do
    log "go build $b"
    (cd "$work" && CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$DEST/$b" "k8s.io/kubernetes/cmd/$b")
    touch "$DEST/.$b.v$K8S_VERSION"
  done
  rm -rf "$work"; trap - EXIT
fi

if wants etcd && [[ ! -x "$DEST/etcd" || ! -f "$DEST/.etcd.v$ETCD_VERSION" ]]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  log "building etcd v$ETCD_VERSION from go.etcd.io/etcd/server/v3 (~1-2 min)"
  printf 'module assets\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > "$work/go.mod"
  printf '//go:build tools\n\npackage assets\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$work/tools.go"
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >&2)
  (cd "$work" && CGO_ENABLED=0 go build -ldflags "-s -w" -o "$DEST/etcd" go.etcd.io/etcd/server/v3)
  rm -f "$DEST"/.etcd.v*
  touch "$DEST/.etcd.v$ETCD_VERSION"
  rm -rf "$work"; trap - EXIT
fi

log "ready in $DEST"
echo "$DEST"
