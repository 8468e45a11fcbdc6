package reliability

import (
	"crypto/tls"
	"net"
	"net/url"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rapport-dev/rapport/test/utils"
)

var _ = Describe("Metrics endpoint certificate", func() {
	It("serves the certificate of --metrics-cert-path, and the renewed one after a rotation", func() {
		dir := GinkgoT().TempDir()
		writeServingCert(dir, "metrics-first")
		mgr, err := utils.StartManager(ctx, utils.ManagerOptions{Kubeconfig: cp.Kubeconfig,
			Args: []string{"--metrics-secure=true", "--metrics-cert-path=" + dir}})
		Expect(err).NotTo(HaveOccurred())
		defer mgr.Stop()
		u, err := url.Parse(mgr.MetricsURL)
		Expect(err).NotTo(HaveOccurred())
		served := func() (string, error) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", u.Host,
				&tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reads which certificate is served
			if err != nil {
				return "", err
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
		}
		Eventually(served).Should(Equal("metrics-first"), "not the self-signed certificate generated at start-up")

		writeServingCert(dir, "metrics-second") // what cert-manager and the kubelet do on renewal
		Eventually(served).Should(Equal("metrics-second"), "the renewed certificate is served without a restart")
	})
})

// writeServingCert writes a self-signed tls.crt and tls.key for 127.0.0.1.
func writeServingCert(dir, cn string) {
	_, _, _, err := utils.WriteServingCert(dir, cn)
	Expect(err).NotTo(HaveOccurred())
}
