package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Fleet configures registration through meshexp's controller (package
// fleet): the host proves itself with its SVID instead of a kubeconfig.
type Fleet struct {
	ControllerAddr     string // host:port; empty: no controller
	ControllerIdentity string // SPIFFE ID or DNS name; empty: ControllerID()
	Group              string // the ExternalGroup, in the workload's namespace
}

// DefaultControllerNamespace is where `meshexp controller install` puts
// the controller (controller.DefaultNamespace; a cli test checks they agree).
const DefaultControllerNamespace = "meshexp-system"

// ControllerIdentity is the controller identity the host expects: the
// setting, or the SPIFFE ID `meshexp certs controller` puts in the
// controller's certificate for the default namespace.
func (c *Config) ControllerIdentity() string {
	if c.Fleet.ControllerIdentity != "" {
		return c.Fleet.ControllerIdentity
	}
	return "spiffe://" + c.TrustDomain + "/ns/" + DefaultControllerNamespace + "/sa/meshexp-controller"
}

func (v *validator) fleet() {
	f := v.c.Fleet
	if f.ControllerAddr == "" {
		if f.Group != "" || f.ControllerIdentity != "" {
			v.add("controller-addr", "give the controller's host:port, or drop --group and --controller-identity", "not set, but --group or --controller-identity is")
		}
		return
	}
	if host, port, err := net.SplitHostPort(f.ControllerAddr); err != nil || host == "" {
		v.add("controller-addr", "write it as host:port, e.g. meshexp-controller.example.com:8443", "%q is not host:port", f.ControllerAddr)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add("controller-addr", "use a port from 1 to 65535", "port %q is not a port number", port)
	}
	if v.c.Register.Enabled {
		v.add("register", "choose one: --register (direct, with a kubeconfig) or --controller-addr (through the controller, with the host's SVID)", "set together with --controller-addr")
	}
	if f.Group == "" {
		v.add("group", "name the ExternalGroup the host joins (kubectl -n <workload namespace> get externalgroups)", "required with --controller-addr")
	} else if !dns1123Label.MatchString(f.Group) || len(f.Group) > 63 {
		v.add("group", "use the ExternalGroup's name: lowercase letters, digits and '-'", "%q is not a valid name", f.Group)
	}
	if id := f.ControllerIdentity; id != "" {
		if strings.HasPrefix(id, "spiffe://") {
			if u, err := url.Parse(id); err != nil || u.Host == "" || u.Path == "" {
				v.add("controller-identity", "write a SPIFFE ID as spiffe://<trust domain>/<path>", "%q is not a SPIFFE ID", id)
			}
		} else if strings.ContainsAny(id, "/: ") || !strings.Contains(id, ".") {
			v.add("controller-identity", "give the controller's SPIFFE ID (spiffe://...) or a DNS name in its certificate", "%q is neither a SPIFFE ID nor a DNS name", id)
		}
	}
}
