// Package validation checks the CRD schemas (OpenAPI and CEL rules) of the
// cx.rapport.dev API against a real kube-apiserver: every sample is accepted
// and each kind of bad input is rejected with a message naming the field and
// the fix.
package validation

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rapport-dev/rapport/test/utils"
	"github.com/rapport-dev/rapport/test/utils/specs"
)

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	k8s     client.Client
	ctx     context.Context
	cancel  context.CancelFunc
)

func TestValidation(t *testing.T) {
	RegisterFailHandler(Fail)
	specs.Run(t, "CRD validation suite")
}

var _ = BeforeSuite(func() {
	ctx, cancel = context.WithCancel(context.Background())
	var err error
	testEnv, err = utils.NewEnvironment(utils.EnvironmentOptions{})
	Expect(err).NotTo(HaveOccurred())
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8s, err = client.New(cfg, client.Options{})
	Expect(err).NotTo(HaveOccurred())
})

var _ = AfterSuite(func() {
	cancel()
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
