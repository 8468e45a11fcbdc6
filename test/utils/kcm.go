package utils

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ControllerManager is a kube-controller-manager running only the namespace
// and garbage-collector controllers, so that namespace deletion and owner
// references behave as in a real cluster.
type ControllerManager struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// StartControllerManager starts kube-controller-manager from the assets
// folder (hack/envtest-assets.sh ... kube-controller-manager).
func (cp *ControlPlane) StartControllerManager() (*ControllerManager, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kube-controller-manager not built: run hack/envtest-assets.sh kube-controller-manager: %w", err)
	}
	log, err := os.Create(filepath.Join(cp.dir, "kube-controller-manager.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--kubeconfig="+cp.Kubeconfig,
		"--controllers=namespace,garbagecollector",
		"--leader-elect=false",
		"--secure-port=0",
		"--concurrent-namespace-syncs=4",
	)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &ControllerManager{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); log.Close(); close(m.done) }()
	return m, nil
}

// Stop stops it.
func (m *ControllerManager) Stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
}
