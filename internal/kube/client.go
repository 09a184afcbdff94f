package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1 "k8s.io/client-go/kubernetes/typed/networking/v1"
	rbacv1client "k8s.io/client-go/kubernetes/typed/rbac/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DialFunc dials the API server. bootstrap passes one whose sockets carry
// the mark that interception lets through, so that meshexp's own API
// traffic is never redirected into the proxy.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// LoadConfig loads a kubeconfig the way kubectl does: path when not empty,
// else the files in KUBECONFIG, else ~/.kube/config. dial, when not nil,
// replaces the dialer of every connection to the API server.
func LoadConfig(path string, dial DialFunc) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("kubeconfig: none found; give --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config (`meshexp workload rbac --kubeconfig-out` writes one for a host)")
		}
		where := path
		if where == "" {
			where = "from KUBECONFIG or ~/.kube/config"
		}
		return nil, fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	if dial != nil {
		cfg.Dial = dial
	}
	cfg.UserAgent = "meshexp"
	return cfg, nil
}

// Client holds the API clients meshexp uses; all share one HTTP client, so
// one connection (HTTP/2) carries every request of a host.
type Client struct {
	Dynamic      dynamic.Interface
	Core         corev1client.CoreV1Interface
	Coordination coordinationv1.CoordinationV1Interface
	RBAC         rbacv1client.RbacV1Interface
	Networking   networkingv1.NetworkingV1Interface

	hc *http.Client
}

// Close closes the client's idle connections to the API server.
func (c *Client) Close() {
	if c.hc != nil {
		utilnet.CloseIdleConnectionsFor(c.hc.Transport)
	}
}

// NewClient builds a Client from cfg. Only the API groups meshexp touches
// are linked in, instead of the whole clientset.
func NewClient(cfg *rest.Config) (*Client, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("build HTTP client for %s: %w", cfg.Host, err)
	}
	return newClient(cfg, hc)
}

func newClient(cfg *rest.Config, hc *http.Client) (*Client, error) {
	c := &Client{hc: hc}
	var err error
	if c.Dynamic, err = dynamic.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("build dynamic client: %w", err)
	}
	if c.Core, err = corev1client.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("build core/v1 client: %w", err)
	}
	if c.Coordination, err = coordinationv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("build coordination/v1 client: %w", err)
	}
	if c.RBAC, err = rbacv1client.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("build rbac/v1 client: %w", err)
	}
	if c.Networking, err = networkingv1.NewForConfigAndClient(cfg, hc); err != nil {
		return nil, fmt.Errorf("build networking/v1 client: %w", err)
	}
	return c, nil
}
