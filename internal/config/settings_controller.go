package config

import (
	"errors"
	"net"
	"strconv"
	"time"
)

// Controller configures the cluster-side `meshexp controller`. Its flags
// predate the registry and keep their short names (Setting.Flag); the
// variables are MESHEXP_CONTROLLER_*. The trust and cluster domains and
// the kubeconfig are the shared settings.
type Controller struct {
	Namespace     string // the election Lease's and the SPIFFE ID's
	Listen        string // [host]:port hosts and replicas connect to
	AdvertiseAddr string // host:port other replicas reach this one on; empty: derived
	TLSDir        string // controller.crt, controller.key, ca.crt
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	MetricsAddr   string // [IP]:PORT for /metrics; empty: off
}

// DefaultControllerPort is the port hosts reach the controller on
// (controller.DefaultPort; a cli test checks they agree).
const DefaultControllerPort = 8443

func init() {
	ctl := func(name, usage, def, kind string, parse func(*Config, string) error) *Setting {
		return &Setting{Name: "controller-" + name, Flag: name, Env: []string{"MESHEXP_CONTROLLER_" + envWord(name)},
			Default: def, Group: "controller", Scope: ScopeController, Usage: usage, Kind: kind, parse: parse}
	}
	field := func(f func(*Controller) *string) func(*Config, string) error {
		return str(func(c *Config) *string { return f(&c.Controller) })
	}
	dur := func(f func(*Controller) *time.Duration) func(*Config, string) error {
		return duration(func(c *Config) *time.Duration { return f(&c.Controller) })
	}
	register(
		ctl("namespace", "the controller's namespace: its leader election Lease and its SPIFFE ID", DefaultControllerNamespace, "",
			field(func(o *Controller) *string { return &o.Namespace })),
		ctl("listen", "address hosts and other replicas connect to, [IP]:PORT", ":"+strconv.Itoa(DefaultControllerPort), "address",
			field(func(o *Controller) *string { return &o.Listen })),
		ctl("advertise-addr", "HOST:PORT other replicas reach this one on (default $POD_IP with the --listen port, else --listen when it names a host)", "", "address",
			field(func(o *Controller) *string { return &o.AdvertiseAddr })),
		ctl("tls-dir", "directory with controller.crt and controller.key (`meshexp certs controller`) and ca.crt, the mesh's trust anchor", "/var/run/meshexp/tls", "",
			field(func(o *Controller) *string { return &o.TLSDir })),
		ctl("lease-duration", "leader election: how long a leader's Lease holds without renewal, the failover time after a crash (client-go's default)", "15s", "duration",
			dur(func(o *Controller) *time.Duration { return &o.LeaseDuration })),
		ctl("renew-deadline", "leader election: a leader that cannot renew for this long steps down; less than --lease-duration", "10s", "duration",
			dur(func(o *Controller) *time.Duration { return &o.RenewDeadline })),
		ctl("retry-period", "leader election: how often to renew or retry; less than --renew-deadline", "2s", "duration",
			dur(func(o *Controller) *time.Duration { return &o.RetryPeriod })),
		ctl("metrics-addr", "serve Prometheus metrics at http://ADDR/metrics, [IP]:PORT (`meshexp controller install` sets :9990); off when empty", "", "address",
			field(func(o *Controller) *string { return &o.MetricsAddr })),
	)
}

// envWord is a flag name as a variable's word: advertise-addr → ADVERTISE_ADDR.
func envWord(flag string) string {
	b := []byte(flag)
	for i, ch := range b {
		switch {
		case ch == '-':
			b[i] = '_'
		case ch >= 'a' && ch <= 'z':
			b[i] = ch - 'a' + 'A'
		}
	}
	return string(b)
}

// controller checks the controller's settings (files are the command's:
// it reads the certificates).
func (v *validator) controller() {
	c := v.c
	o := c.Controller
	if v.opts.Scope&ScopeWorkload == 0 {
		if !trustDomain.MatchString(c.TrustDomain) || len(c.TrustDomain) > 255 {
			v.add("trust-domain", "use lowercase letters, digits, '.', '-' and '_' (e.g. root.linkerd.cluster.local)", "%s is not a valid SPIFFE trust domain", quote(c.TrustDomain))
		}
		if !IsDNS1123Subdomain(c.ClusterDomain) {
			v.add("cluster-domain", "use a DNS name such as cluster.local", "%s is not a valid DNS domain", quote(c.ClusterDomain))
		}
	}
	if !IsDNS1123Label(o.Namespace) {
		v.add("controller-namespace", "use the namespace the controller runs in (a DNS-1123 label), e.g. "+DefaultControllerNamespace,
			"%s is not a valid Kubernetes namespace", quote(o.Namespace))
	}
	if _, err := listenPort(o.Listen, true); err != nil {
		v.add("controller-listen", "write it as [IP]:PORT, e.g. :8443 or 0.0.0.0:8443", "%s: %v", quote(o.Listen), err)
	}
	if a := o.AdvertiseAddr; a != "" {
		if host, _, err := net.SplitHostPort(a); err != nil || host == "" {
			v.add("controller-advertise-addr", "write it as HOST:PORT, e.g. 10.0.0.5:8443", "%s is not host:port", quote(a))
		} else if _, err := listenPort(a, false); err != nil {
			v.add("controller-advertise-addr", "write it as HOST:PORT, e.g. 10.0.0.5:8443", "%s: %v", quote(a), err)
		}
	}
	if a := o.MetricsAddr; a != "" {
		if _, err := listenPort(a, true); err != nil {
			v.add("controller-metrics-addr", "write it as [IP]:PORT, e.g. :9990, or leave it empty to serve no metrics", "%s: %v", quote(a), err)
		}
	}
	if o.TLSDir == "" {
		v.add("controller-tls-dir", "point it at the directory holding controller.crt, controller.key and ca.crt", "is empty")
	}
	// client-go's rule (leaderelection.NewLeaderElector); a setting outside
	// its bounds was refused already and is not blamed again.
	if o.RetryPeriod > 0 && o.RenewDeadline > 0 && o.LeaseDuration > 0 {
		if o.RenewDeadline <= o.RetryPeriod {
			v.add("controller-renew-deadline", "make it longer than --retry-period (defaults 10s and 2s)",
				"%s is not longer than --retry-period %s", o.RenewDeadline, o.RetryPeriod)
		}
		if o.LeaseDuration <= o.RenewDeadline {
			v.add("controller-lease-duration", "make it longer than --renew-deadline (defaults 15s and 10s)",
				"%s is not longer than --renew-deadline %s", o.LeaseDuration, o.RenewDeadline)
		}
	}
}

// listenPort checks [host]:port and returns the port; zero (any free
// port) only with anyPort.
func listenPort(addr string, anyPort bool) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", errors.New("not [host]:port")
	}
	low := 1
	if anyPort {
		low = 0
	}
	if n, err := strconv.Atoi(port); err != nil || n < low || n > 65535 {
		return "", errors.New("port " + quote(port) + " is not a port number from 1 to 65535")
	}
	return port, nil
}
