package controller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshexp/meshexp/internal/fleet"
)

func serverCreds(svid x509svid.Source) credentials.TransportCredentials {
	return credentials.NewTLS(fleet.ServerTLS(svid))
}

// heartbeat is how often hosts report when nothing changes: a third of the
// group's grace, so two lost heartbeats never make a host not-ready.
func heartbeat(g *Group) int32 { return int32(max(g.NotReadyAfter()/3/time.Second, 1)) }

// Register serves one host's stream (or one relayed by another replica).
func (c *Controller) Register(stream grpc.ServerStream) error {
	ctx := stream.Context()
	p, _ := peer.FromContext(ctx)
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return c.refuse("no_certificate", status.Error(codes.Unauthenticated, "no TLS client certificate: present the host's X.509-SVID"))
	}
	peerID, err := fleet.VerifyPeer(info.State.PeerCertificates, c.o.Bundle)
	if err != nil {
		return c.refuse("bad_svid", status.Error(codes.Unauthenticated, err.Error()))
	}
	var r fleet.Report
	if err := stream.RecvMsg(&r); err != nil {
		return err
	}
	id, relayed := peerID, false
	switch {
	case peerID == c.o.ID:
		if id, err = spiffeid.FromString(r.Host); err != nil {
			return c.refuse("bad_relay", status.Errorf(codes.InvalidArgument, "relayed report without a valid host identity: %v", err))
		}
		relayed = true
	case r.Host != "":
		return c.refuse("relay_forbidden", status.Errorf(codes.PermissionDenied, "%s may not relay reports for other hosts (only the controller %s may)", peerID, c.o.ID))
	}
	key, g, err := c.admit(ctx, id, &r)
	if err != nil {
		c.log.Info("refused a host", "identity", id.String(), "group", r.Namespace+"/"+r.Group, "error", status.Convert(err).Message())
		return err
	}
	if err := stream.SendMsg(&fleet.Ack{Namespace: key.Namespace, Name: key.Name, HeartbeatSeconds: heartbeat(g), Probe: g.Spec.Probe}); err != nil {
		return err
	}
	c.log.Debug("host registered", "identity", id.String(), "externalworkload", key.String(), "relayed", relayed)
	var rl *relay
	streams, reports := &c.m.relayStreams, &c.m.relayReports
	if !relayed {
		rl = c.newRelay(ctx, id)
		streams, reports = &c.m.hostStreams, &c.m.hostReports
	}
	streams.Add(1)
	defer streams.Add(-1)
	first := r
	for {
		if err := checkSame(&first, &r); err != nil {
			return c.refuse("bad_request", err)
		}
		reports.Add(1)
		c.hub.report(key, g.Name, id.String(), &r, time.Now())
		if rl != nil {
			rl.send(r)
		}
		r = fleet.Report{}
		if err := stream.RecvMsg(&r); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

func checkSame(first, r *fleet.Report) error {
	if r.Group != first.Group || r.Namespace != first.Namespace || r.Name != first.Name || r.Host != first.Host {
		return status.Error(codes.InvalidArgument, "a report changed the group, namespace or name of the registration; open a new stream instead")
	}
	return validIPs(r.IPs)
}

func validIPs(ips []string) error {
	if len(ips) == 0 || len(ips) > 2 {
		return status.Errorf(codes.InvalidArgument, "workload IPs: %d given; give one IPv4 and/or one IPv6 address", len(ips))
	}
	for _, s := range ips {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() {
			return status.Errorf(codes.InvalidArgument, "workload IP %q: not an address the cluster can reach", s)
		}
	}
	return nil
}

// refuse counts a refusal by reason and returns err.
func (c *Controller) refuse(reason string, err error) error {
	c.m.refused(reason)
	return err
}

// admit checks that id may hold the registration r asks for and returns its
// ExternalWorkload's name and group. Errors are gRPC statuses whose message
// names what is wrong and the fix.
func (c *Controller) admit(ctx context.Context, id spiffeid.ID, r *fleet.Report) (types.NamespacedName, *Group, error) {
	none := types.NamespacedName{}
	if r.Group == "" || r.Namespace == "" {
		return none, nil, c.refuse("bad_request", status.Error(codes.InvalidArgument, "no group: give the ExternalGroup's name and namespace (--group)"))
	}
	if err := validIPs(r.IPs); err != nil {
		return none, nil, c.refuse("bad_request", err)
	}
	g := c.group(r.Namespace, r.Group)
	if g == nil {
		return none, nil, c.refuse("group_not_found", status.Errorf(codes.NotFound, "ExternalGroup %s/%s not found; create it (kubectl -n %s get externalgroups) or fix --group", r.Namespace, r.Group, r.Namespace))
	}
	if err := g.ValidateTemplate(); err != nil {
		return none, nil, c.refuse("invalid_template", status.Errorf(codes.FailedPrecondition, "ExternalGroup %s/%s has an invalid template: %v", g.Namespace, g.Name, err))
	}
	name, err := g.Admit(id)
	if err != nil {
		return none, nil, c.refuse("not_admitted", status.Error(codes.PermissionDenied, err.Error()))
	}
	key := types.NamespacedName{Namespace: g.Namespace, Name: name}
	if r.Name != "" && r.Name != name {
		return key, nil, c.refuse("wrong_name", status.Errorf(codes.PermissionDenied, "identity %s may write only the ExternalWorkload %s; %s/%s is not bound to it", id, key, g.Namespace, r.Name))
	}
	cur := c.workload(key)
	if cur == nil {
		live, err := c.dyn.Resource(ExternalWorkloadGVR).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		switch {
		case err == nil:
			cur = live
		case !apierrors.IsNotFound(err):
			return key, nil, c.refuse("unavailable", status.Errorf(codes.Unavailable, "read ExternalWorkload %s: %v", key, err))
		}
	}
	if cur != nil && !owned(cur, g, "") {
		return key, nil, c.refuse("not_owned", status.Errorf(codes.PermissionDenied, "ExternalWorkload %s exists and is not managed by ExternalGroup %s through %s; the controller leaves it alone: delete it or give the host another identity", key, g.Name, ManagedBy))
	}
	if cur != nil && cur.GetAnnotations()[annotationID] != id.String() {
		return key, nil, c.refuse("bound_to_other", status.Errorf(codes.PermissionDenied, "ExternalWorkload %s is bound to identity %s, not %s", key, cur.GetAnnotations()[annotationID], id))
	}
	return key, g, nil
}

// relay forwards one host's reports to the leader while this replica is
// not the leader. Each report goes out as it comes (at least every
// heartbeat), so a new leader hears from the host within one heartbeat.
type relay struct {
	c      *Controller
	host   spiffeid.ID
	ctx    context.Context
	leader string
	stream grpc.ClientStream
	cancel context.CancelFunc
}

func (c *Controller) newRelay(ctx context.Context, host spiffeid.ID) *relay {
	return &relay{c: c, host: host, ctx: ctx}
}

func (rl *relay) close() {
	if rl.cancel != nil {
		rl.cancel()
	}
	rl.stream, rl.cancel, rl.leader = nil, nil, ""
}

func (rl *relay) send(r fleet.Report) {
	leader, mine := rl.c.elect.Leader()
	if mine || leader == "" {
		rl.close()
		return
	}
	if leader != rl.leader {
		rl.close()
	}
	r.Host = rl.host.String()
	if rl.stream != nil {
		if err := rl.stream.SendMsg(&r); err == nil {
			return
		}
		rl.close()
	}
	conn, err := rl.c.peer(leader)
	if err != nil {
		rl.c.log.Warn("relay to the leader", "leader", leader, "error", err)
		return
	}
	ctx, cancel := context.WithCancel(rl.ctx)
	stream, err := fleet.OpenStream(ctx, conn)
	if err == nil {
		err = stream.SendMsg(&r)
	}
	if err == nil {
		var ack fleet.Ack
		err = stream.RecvMsg(&ack)
	}
	if err != nil {
		cancel()
		rl.c.log.Warn("relay to the leader", "leader", leader, "host", rl.host.String(), "error", err)
		return
	}
	rl.leader, rl.stream, rl.cancel = leader, stream, cancel
}

// peer is the connection to another replica, verified by the controller's
// own SPIFFE ID.
func (c *Controller) peer(addr string) (*grpc.ClientConn, error) {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	if conn, ok := c.peers[addr]; ok {
		return conn, nil
	}
	tlsCfg := tlsconfig.MTLSClientConfig(c.o.SVID, c.o.Bundle, tlsconfig.AuthorizeID(c.o.ID))
	conn, err := fleet.Dial(addr, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("connect to replica %s: %w", addr, err)
	}
	c.peers[addr] = conn
	return conn, nil
}

func (c *Controller) closePeers() {
	c.peersMu.Lock()
	defer c.peersMu.Unlock()
	for addr, conn := range c.peers {
		_ = conn.Close()
		delete(c.peers, addr)
	}
}
