#!/usr/bin/env bash
# Builds Traefik (a conformant Gateway API implementation, the real proxy of the
# e2e suite, the wire benchmark and `make demo`) from the Go module proxy into
# ./bin/traefik-<version> and prints that path on stdout.
#
# Why this way: release downloads are unreachable from our build machines, and
# `go install .../cmd/traefik@version` is refused because Traefik's go.mod has
# replace directives. `go mod download` puts the module's source in the module
# cache, where `go build ./cmd/traefik` works (see docs/development.md).
#
# Idempotent: an existing binary is not rebuilt (its name carries the version).
# Safe to run concurrently: a lock serialises builds, and the binary appears
# atomically (built under a temporary name, then renamed).
# Honours TRAEFIK_BIN: when it names an executable, that path is printed and
# nothing is built.
#
# Usage: hack/traefik-bin.sh            (progress on stderr, path on stdout)
set -euo pipefail

TRAEFIK_VERSION="${TRAEFIK_VERSION:-v3.6.12}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCALBIN="${LOCALBIN:-$ROOT/bin}"
DEST="$LOCALBIN/traefik-$TRAEFIK_VERSION"

log() { echo "traefik-bin: $*" >&2; }

if [[ -n "${TRAEFIK_BIN:-}" ]]; then
  if [[ -x "$TRAEFIK_BIN" ]]; then echo "$TRAEFIK_BIN"; exit 0; fi
  log "TRAEFIK_BIN=$TRAEFIK_BIN is not an executable file; unset it to build $TRAEFIK_VERSION into $LOCALBIN"
  exit 1
fi
if [[ -x "$DEST" ]]; then echo "$DEST"; exit 0; fi

mkdir -p "$LOCALBIN"
exec 9>"$LOCALBIN/.traefik-$TRAEFIK_VERSION.lock"
if ! flock -n 9; then
  log "another build of Traefik $TRAEFIK_VERSION is running; waiting for it"
  flock 9
fi
if [[ -x "$DEST" ]]; then echo "$DEST"; exit 0; fi

start=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work" "$DEST.tmp"' EXIT
log "downloading github.com/traefik/traefik/v3@$TRAEFIK_VERSION from the Go module proxy"
# Outside any module, so that the download does not touch a go.mod.
dir="$(cd "$work" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$dir" || ! -d "$dir/cmd/traefik" ]]; then
  log "could not find the module's source (go mod download gave Dir='$dir')"
  exit 1
fi
log "building Traefik $TRAEFIK_VERSION into $DEST (cold caches: 6-15 min on 2 cores, module downloads included; longer on a busy machine)"
ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION"
(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$DEST.tmp" ./cmd/traefik)
mv "$DEST.tmp" "$DEST"
rm -rf "$work"; trap - EXIT
log "built $DEST in $((SECONDS - start)) s"
echo "$DEST"
