package standin

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// WorkloadAPI is a SPIFFE Workload API server on a unix socket that streams
// the X.509 SVIDs a test sets, standing in for a SPIRE agent where a test is
// about the proxy rather than SPIRE. Like the agent it refuses requests
// without the "workload.spiffe.io: true" header (InvalidArgument) and
// answers PermissionDenied while it has no SVID for the caller.
type WorkloadAPI struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	path string
	srv  *grpc.Server

	mu      sync.Mutex
	svids   []*workload.X509SVID
	changed chan struct{} // closed and replaced on every Set
	streams int
}

// NewWorkloadAPI listens on a fresh socket, reachable by any uid, and stops
// in tb.Cleanup.
func NewWorkloadAPI(tb testing.TB) *WorkloadAPI {
	tb.Helper()
	return NewWorkloadAPIAt(tb, SocketPath(tb))
}

// SocketPath returns a path for a socket in a fresh directory that any uid
// may enter, removed in tb.Cleanup. The directory is short: unix socket
// paths are limited to 108 bytes and t.TempDir() grows with the test name.
func SocketPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "mxwl")
	if err != nil {
		tb.Fatalf("standin: socket directory: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("standin: %v", err)
	}
	return filepath.Join(dir, "api.sock")
}

// NewWorkloadAPIAt is NewWorkloadAPI on a given socket path, for a test
// whose client was told the path before the server existed.
func NewWorkloadAPIAt(tb testing.TB, path string) *WorkloadAPI {
	tb.Helper()
	w := &WorkloadAPI{path: path, changed: make(chan struct{})}
	ln, err := net.Listen("unix", w.path)
	if err != nil {
		tb.Fatalf("standin: listening on %s: %v", w.path, err)
	}
	if err := os.Chmod(w.path, 0o777); err != nil {
		tb.Fatalf("standin: %v", err)
	}
	w.srv = grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(w.srv, w)
	go w.srv.Serve(ln)
	tb.Cleanup(w.srv.Stop)
	return w
}

// Path is the socket's path.
func (w *WorkloadAPI) Path() string { return w.path }

// Addr is the socket as a Workload API address: unix:///path.
func (w *WorkloadAPI) Addr() string { return "unix://" + w.path }

// Set replaces the SVIDs served and pushes them to every open stream, as the
// agent does on rotation. No SVIDs means PermissionDenied for new requests.
func (w *WorkloadAPI) Set(svids ...*workload.X509SVID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.svids = svids
	close(w.changed)
	w.changed = make(chan struct{})
}

// Streams is the number of FetchX509SVID streams opened so far.
func (w *WorkloadAPI) Streams() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.streams
}

// FetchX509SVID implements the Workload API's X.509 stream.
func (w *WorkloadAPI) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	w.mu.Lock()
	w.streams++
	w.mu.Unlock()
	for {
		w.mu.Lock()
		svids, changed := w.svids, w.changed
		w.mu.Unlock()
		if len(svids) == 0 {
			return status.Error(codes.PermissionDenied, "no identity issued")
		}
		resp := &workload.X509SVIDResponse{}
		for _, s := range svids {
			resp.Svids = append(resp.Svids, proto.Clone(s).(*workload.X509SVID))
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		}
	}
}
