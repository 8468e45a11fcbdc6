package reliability

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
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
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	kb, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	// Key first, then the certificate: a watcher never pairs the new
	// certificate with the old key.
	Expect(os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)).To(Succeed())
	Expect(os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)).To(Succeed())
}
