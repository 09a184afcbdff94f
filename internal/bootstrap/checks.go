package bootstrap

import (
	"fmt"
	"net/http"
	"sync"

	"k8s.io/client-go/rest"

	"github.com/meshexp/meshexp/internal/config"
	"github.com/meshexp/meshexp/internal/kube"
	"github.com/meshexp/meshexp/internal/netfilter"
)

// lazyKube loads the kubeconfig once, for the checks that need it; its
// connections carry the control mark.
type lazyKube struct {
	c    *config.Config
	once sync.Once
	cfg  *rest.Config
	cl   *kube.Client
	hc   *http.Client
	err  error
}

func (k *lazyKube) load() {
	k.once.Do(func() {
		k.cfg, k.err = kube.LoadConfig(k.c.Register.Kubeconfig, netfilter.ControlDialer(k.c.Intercept.ControlMark).DialContext)
		if k.err != nil {
			return
		}
		if k.hc, k.err = rest.HTTPClientFor(k.cfg); k.err != nil {
			k.err = fmt.Errorf("kubernetes client: %w", k.err)
			return
		}
		if k.cl, k.err = kube.NewClient(k.cfg); k.err != nil {
			k.err = fmt.Errorf("kubernetes client: %w", k.err)
		}
	})
}

func (k *lazyKube) http() (*rest.Config, *http.Client, error) {
	k.load()
	return k.cfg, k.hc, k.err
}

func (k *lazyKube) client() (*kube.Client, error) {
	k.load()
	return k.cl, k.err
}
