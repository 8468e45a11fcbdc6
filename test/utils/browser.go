package utils

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/chromedp/chromedp"
)

// ChromiumBinEnv names the environment variable holding the path of the
// Chromium binary (the Makefile sets it from hack/chromium-bin.sh).
const ChromiumBinEnv = "CHROMIUM_BIN"

// Chromium returns the path of a Chromium binary: $CHROMIUM_BIN when set
// (it must then be executable), else chromium on PATH or /usr/bin/chromium.
// It never installs or downloads one: hack/chromium-bin.sh installs
// Debian's package, and CI runs it first.
func Chromium() (string, error) {
	if bin := os.Getenv(ChromiumBinEnv); bin != "" {
		if err := checkExecutable(bin); err != nil {
			return "", fmt.Errorf("%s=%s: %w", ChromiumBinEnv, bin, err)
		}
		return bin, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if checkExecutable("/usr/bin/chromium") == nil {
		return "/usr/bin/chromium", nil
	}
	return "", fmt.Errorf("no Chromium found (set %s, or run hack/chromium-bin.sh to install Debian's chromium)", ChromiumBinEnv)
}

// ChromiumOptions are the allocator options the browser tests use: the
// given binary, headless, no sandbox (the tests run as root in CI), a fresh
// profile in dir, and nothing that talks to the network on its own
// (background networking, component updates, sync, QUIC), so a closed
// network sees only the tests' own requests.
func ChromiumOptions(bin, dir string) []chromedp.ExecAllocatorOption {
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	return append(opts,
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
}
