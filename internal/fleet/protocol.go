// Package fleet is the protocol between a host's meshexp and meshexp's
// cluster-side controller, and the host's client.
//
// A host registers over mutual TLS with its X.509-SVID; no Kubernetes
// credential is involved. The transport is gRPC (one bidirectional stream
// per host, HTTP/2 keepalives) with JSON messages: the service is a single
// method, so hand-written descriptors replace generated code, and the
// messages stay readable in logs.
//
//	host                                   controller
//	  Report{group, namespace, ips, ready} →        verify chain, admit ID in group
//	                                    ← Ack{name, heartbeat, probe}
//	  Report (on every change, and at least every heartbeat) →
//
// The controller derives the ExternalWorkload's name from the host's
// SPIFFE ID; a Report that names another object is refused. Errors end the
// stream with a gRPC status whose message names what was wrong and the fix.
package fleet

import (
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Report is what a host tells the controller: first to register, then on
// every change and at least once per heartbeat.
type Report struct {
	// Group and Namespace name the ExternalGroup the host joins.
	Group     string `json:"group"`
	Namespace string `json:"namespace"`
	// Name, when set, is the ExternalWorkload the host expects to own; it
	// must be the one bound to its identity.
	Name string `json:"name,omitempty"`
	// IPs are the addresses the cluster reaches the host on (one IPv4
	// and/or one IPv6).
	IPs []string `json:"ips,omitempty"`
	// Ready is the host's readiness (its proxy's /ready); Reason and
	// Message explain it and go into the Ready condition.
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Host is set only by a controller replica relaying a host's stream to
	// the leader: the host's verified SPIFFE ID. The leader accepts it
	// only from a peer presenting the controller's own identity.
	Host string `json:"host,omitempty"`
}

// Ack answers a host's first Report.
type Ack struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// HeartbeatSeconds is how often the host must report when nothing
	// changes; the group's notReadyAfter is several of them.
	HeartbeatSeconds int32 `json:"heartbeatSeconds"`
	// Probe is the group's defaults for the host's probe of its proxy.
	Probe Probe `json:"probe"`
}

// Probe are a readiness probe's settings, with kubelet's meanings.
type Probe struct {
	PeriodSeconds    int32 `json:"periodSeconds,omitempty"`
	TimeoutSeconds   int32 `json:"timeoutSeconds,omitempty"`
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
	SuccessThreshold int32 `json:"successThreshold,omitempty"`
}

// Server is what the controller implements.
type Server interface {
	Register(stream grpc.ServerStream) error
}

// Full names of the service and its method.
const (
	ServiceName    = "meshexp.fleet.v1alpha1.Fleet"
	registerMethod = "/" + ServiceName + "/Register"
)

// RegisterServer adds srv to s. The server must be created with
// ServerOptions (the JSON codec).
func RegisterServer(s *grpc.Server, srv Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: ServiceName,
		HandlerType: (*Server)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Register",
			ServerStreams: true,
			ClientStreams: true,
			Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(Server).Register(stream) },
		}},
		Metadata: "meshexp/fleet",
	}, srv)
}

var registerStreamDesc = grpc.StreamDesc{StreamName: "Register", ServerStreams: true, ClientStreams: true}

// codec carries the messages as JSON.
type codec struct{}

func (codec) Marshal(v any) ([]byte, error)   { return json.Marshal(v) }
func (codec) Unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func (codec) Name() string                    { return "json" }

// ServerOptions are the gRPC options a controller's server needs.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodec(codec{}),
		// Small per-connection buffers: a controller holds one
		// connection per host (default 32 KiB each way).
		grpc.ReadBufferSize(4 << 10),
		grpc.WriteBufferSize(4 << 10),
		// Hosts ping every clientKeepalive to find a dead path; allow it.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: clientKeepalive / 2, PermitWithoutStream: true}),
	}
}
