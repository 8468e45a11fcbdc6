#!/usr/bin/env bash
# Prints the path of a Prometheus server binary for the tests, installing
# Debian's `prometheus` package when none is found. The Prometheus server does
# not build from its Go module on our build machines (a dependency is refused
# by the module proxy), so the tests use the Debian build (2.42 at the time).
#
# Honours PROMETHEUS_BIN when it points at an executable.
set -euo pipefail

if [[ -n "${PROMETHEUS_BIN:-}" && -x "${PROMETHEUS_BIN}" ]]; then
  echo "$PROMETHEUS_BIN"; exit 0
fi
for p in "$(command -v prometheus || true)" /usr/bin/prometheus; do
  if [[ -n "$p" && -x "$p" ]]; then echo "$p"; exit 0; fi
done

echo "prometheus-bin: installing Debian's prometheus package" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends prometheus >&2
# The package starts a system service on some hosts; the tests run their own server.
$sudo systemctl stop prometheus >/dev/null 2>&1 || true
echo /usr/bin/prometheus
