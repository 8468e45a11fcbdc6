#!/usr/bin/env bash
# Prints the path of a Chromium browser for the browser tests (the survey
# intercept, driven through chromedp), installing Debian's `chromium`
# package when none is found. No browser build is ever downloaded by a
# driver: the tests run the distribution's browser.
#
# Honours CHROMIUM_BIN when it points at an executable.
set -euo pipefail

if [[ -n "${CHROMIUM_BIN:-}" && -x "${CHROMIUM_BIN}" ]]; then
  echo "$CHROMIUM_BIN"; exit 0
fi
for p in "$(command -v chromium || true)" /usr/bin/chromium "$(command -v chromium-browser || true)"; do
  if [[ -n "$p" && -x "$p" ]]; then echo "$p"; exit 0; fi
done

echo "chromium-bin: installing Debian's chromium package" >&2
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium >&2
echo /usr/bin/chromium
