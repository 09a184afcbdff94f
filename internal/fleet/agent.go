package fleet

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// AgentArgs are the first arguments of the registration agent: bootstrap
// starts meshexp itself with AgentArgs followed by AgentOptions.Args(),
// as the proxy's uid (see AgentOptions).
var AgentArgs = []string{"controller", "agent"}

// AgentOptions configure the host's registration agent.
//
// The agent is a child process that runs as the proxy's uid: the SPIRE
// entry that gives the proxy its SVID selects that uid, so the agent gets
// the same SVID (the host's identity, the ExternalWorkload's
// meshTLS.identity) from the Workload API with no new entry, its key never
// leaves that uid's processes (meshexp itself, root, still never holds
// it), and the workload's uid still cannot obtain any SVID. The proxy's
// uid is also the one whose traffic interception leaves alone, so the
// agent reaches the controller directly.
type AgentOptions struct {
	Socket             string   // the SPIRE agent's Workload API socket
	ID                 string   // the host's SPIFFE ID
	TrustAnchor        string   // PEM file: the mesh's trust anchors (verify the controller)
	ControllerAddr     string   // host:port
	ControllerIdentity string   // SPIFFE ID or TLS name
	Group, Namespace   string   // the ExternalGroup
	Name               string   // the expected ExternalWorkload name (optional)
	IPs                []string // the host's addresses
	ReadyURL           string   // the proxy's /ready, e.g. http://127.0.0.1:4191/ready
	// SVIDTimeout bounds the wait for the first SVID; 0 waits until ctx
	// ends (bootstrap: the proxy has one already, so the agent's comes at
	// once unless something is wrong).
	SVIDTimeout time.Duration
	// StateDir, when set, is where the agent publishes its registration
	// state (StateFile; see ReadState): a directory bootstrap makes for
	// the proxy's uid.
	StateDir string
}

// Args renders o as the agent's flags, for bootstrap to start it.
func (o AgentOptions) Args() []string {
	a := []string{"--socket", o.Socket, "--id", o.ID, "--trust-anchor", o.TrustAnchor,
		"--controller-addr", o.ControllerAddr, "--controller-identity", o.ControllerIdentity,
		"--group", o.Group, "--namespace", o.Namespace, "--ready-url", o.ReadyURL}
	if o.Name != "" {
		a = append(a, "--name", o.Name)
	}
	if o.SVIDTimeout > 0 {
		a = append(a, "--svid-timeout", o.SVIDTimeout.String())
	}
	for _, ip := range o.IPs {
		a = append(a, "--ip", ip)
	}
	if o.StateDir != "" {
		a = append(a, "--state-dir", o.StateDir)
	}
	return a
}

// RunAgent fetches the host's SVID from the Workload API (and follows its
// rotation), then keeps the host registered until ctx ends. onClient, when
// not nil, receives the client (for its State) once it exists. With
// o.StateDir it publishes the registration state there, from its start
// to its end (an error that ends it is published as retrying: bootstrap
// restarts it).
func RunAgent(ctx context.Context, o AgentOptions, log *slog.Logger, onClient func(*Client)) error {
	if o.StateDir == "" {
		return runAgent(ctx, o, log, nil, onClient)
	}
	pub := newPublisher(o.StateDir, o, log)
	pub.write()
	err := runAgent(ctx, o, log, pub.client, onClient)
	if err != nil && ctx.Err() == nil {
		pub.failed(err)
	}
	return err
}

func runAgent(ctx context.Context, o AgentOptions, log *slog.Logger, onState func(State), onClient func(*Client)) error {
	id, err := spiffeid.FromString(o.ID)
	if err != nil {
		return fmt.Errorf("host SPIFFE ID %q: %w", o.ID, err)
	}
	bundle, err := x509bundle.Load(id.TrustDomain(), o.TrustAnchor)
	if err != nil {
		return fmt.Errorf("trust anchor %s: %w", o.TrustAnchor, err)
	}
	log.Info("waiting for the host's SVID from the Workload API", "socket", o.Socket, "id", o.ID)
	fetchCtx, cancel := ctx, context.CancelFunc(func() {})
	if o.SVIDTimeout > 0 {
		fetchCtx, cancel = context.WithTimeout(ctx, o.SVIDTimeout)
	}
	defer cancel()
	src, err := workloadapi.NewX509Source(fetchCtx,
		workloadapi.WithClientOptions(workloadapi.WithAddr("unix://"+o.Socket)),
		workloadapi.WithDefaultX509SVIDPicker(func(svids []*x509svid.SVID) *x509svid.SVID {
			if i := slices.IndexFunc(svids, func(s *x509svid.SVID) bool { return s.ID == id }); i >= 0 {
				return svids[i]
			}
			return svids[0]
		}))
	if err != nil {
		return fmt.Errorf("no SVID for %s from the Workload API at %s as uid %d (the SPIRE entry must select this uid, the proxy's): %w", o.ID, o.Socket, os.Geteuid(), err)
	}
	defer src.Close()
	svid, err := src.GetX509SVID()
	if err != nil {
		return fmt.Errorf("the host's SVID: %w", err)
	}
	if svid.ID != id {
		return fmt.Errorf("the Workload API at %s issued %s to this uid, not the host's %s", o.Socket, svid.ID, id)
	}
	cfg, err := ClientTLS(src, bundle, id.TrustDomain(), o.ControllerIdentity)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	c, err := NewClient(ClientOptions{
		Addr: o.ControllerAddr, TLS: cfg, Group: o.Group, Namespace: o.Namespace, Name: o.Name, IPs: o.IPs,
		Ready: func(ctx context.Context) error { return probeHTTP(ctx, hc, o.ReadyURL) }, Logger: log, OnState: onState,
	})
	if err != nil {
		return err
	}
	if onClient != nil {
		onClient(c)
	}
	return c.Run(ctx)
}

func probeHTTP(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, strings.TrimSpace(resp.Status))
	}
	return nil
}
