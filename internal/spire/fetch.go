package spire

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"

	"github.com/meshexp/meshexp/internal/trust"
)

// FetcherArgs are the first arguments with which a binary that calls Start
// is re-executed as the proxy uid to fetch the SVID; the binary must hand
// the rest to RunFetcher (meshexp: `meshexp identity fetch-svid`).
var FetcherArgs = []string{"identity", "fetch-svid"}

// SVID is a verified X.509 SVID: its SPIFFE ID and its chain, leaf first.
// The private key stays with the proxy; meshexp never holds it.
type SVID struct {
	ID           spiffeid.ID
	Certificates []*x509.Certificate
}

// FetchOptions says where to fetch an SVID from, as whom, and what to
// verify it against.
type FetchOptions struct {
	SocketPath      string // the agent's Workload API socket
	ID              string // the SPIFFE ID expected
	UID, GID        uint32 // the credentials the fetch runs with
	TrustAnchorPath string // the roots the chain must verify against
	// Executable is re-executed (with FetcherArgs) when UID/GID differ from
	// this process's; empty: os.Executable().
	Executable string
}

// FetchSVID waits until the Workload API at o.SocketPath hands a process
// running as o.UID/o.GID an X.509 SVID for o.ID, and verifies its chain
// against the trust anchor and its URI SAN. It polls until ctx ends; the
// error then says what the agent last answered (for a uid no entry selects:
// "no identity issued").
func FetchSVID(ctx context.Context, o FetchOptions) (*SVID, error) {
	want, err := spiffeid.FromString(o.ID)
	if err != nil {
		return nil, fmt.Errorf("spire: expected SPIFFE ID %q: %w", o.ID, err)
	}
	anchors, err := readCerts("TrustAnchorPath", o.TrustAnchorPath)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	if uint32(os.Geteuid()) == o.UID && uint32(os.Getegid()) == o.GID {
		certs, err = pollSVID(ctx, o.SocketPath, want)
	} else {
		certs, err = fetchAs(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	bundle := x509bundle.FromX509Authorities(want.TrustDomain(), anchors)
	got, _, err := x509svid.Verify(certs, bundle)
	if err != nil {
		return nil, fmt.Errorf("spire: the SVID the agent issued for %s does not verify against the trust anchor %s: %w", want, o.TrustAnchorPath, err)
	}
	if got != want {
		return nil, fmt.Errorf("spire: the SVID the agent issued has URI SAN %s, want %s", got, want)
	}
	return &SVID{ID: got, Certificates: certs}, nil
}

// fetchAs re-executes this binary as o.UID/o.GID to fetch the certificates.
// The executable is passed as an open file and run as /proc/self/fd/3, so a
// binary in a directory the proxy uid cannot enter (go test's 0700 build
// directory) still runs.
func fetchAs(ctx context.Context, o FetchOptions) ([]*x509.Certificate, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("spire: fetching the SVID as uid %d needs root (running as uid %d): the entry selects only the proxy's uid", o.UID, os.Geteuid())
	}
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("spire: finding this executable to fetch the SVID as uid %d: %w", o.UID, err)
		}
	}
	f, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("spire: opening %s to fetch the SVID as uid %d: %w", exe, o.UID, err)
	}
	defer f.Close()
	// When ctx ends the child gets SIGTERM, on which it stops polling and
	// says what the agent last answered; SIGKILL follows if it lingers.
	// Its own timeout only guards against a parent that vanished.
	timeout := DefaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl) + childGrace
	}
	args := append(append([]string{}, FetcherArgs...), "-socket", o.SocketPath, "-id", o.ID, "-timeout", timeout.String())
	cmd := exec.CommandContext(ctx, "/proc/self/fd/3", args...)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Env = []string{}
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedWriter{w: &stderr, n: 4096}
	cmd.SysProcAttr = childSysProcAttr()
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: o.UID, Gid: o.GID}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = childGrace
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == exitTimedOut {
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return nil, fmt.Errorf("spire: %s: %w", msg, cause)
		}
		if ctx.Err() != nil && msg == "" {
			return nil, fmt.Errorf("spire: waiting for an X.509 SVID for %s as uid %d on %s: %w", o.ID, o.UID, o.SocketPath, ctx.Err())
		}
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("spire: fetching the SVID as uid %d: %s", o.UID, msg)
	}
	certs, err := trust.ParseCertificates(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("spire: reading the SVID fetched as uid %d: %w", o.UID, err)
	}
	return certs, nil
}

// exitTimedOut is the fetcher's exit status when its time ran out.
const exitTimedOut = 3

// childGrace is how long a fetcher has to report after SIGTERM.
const childGrace = 2 * time.Second

// pollSVID asks the Workload API for the SVIDs of this process until one
// for want arrives or ctx ends.
func pollSVID(ctx context.Context, socket string, want spiffeid.ID) ([]*x509.Certificate, error) {
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket),
		workloadapi.WithDialOptions(grpc.WithConnectParams(fastConnect)))
	if err != nil {
		return nil, fmt.Errorf("spire: connecting to the Workload API at %s: %w", socket, err)
	}
	defer client.Close()
	var last error
	for {
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		svids, err := client.FetchX509SVIDs(callCtx)
		cancel()
		if err == nil {
			var ids []string
			for _, s := range svids {
				if s.ID == want {
					return s.Certificates, nil
				}
				ids = append(ids, s.ID.String())
			}
			err = fmt.Errorf("the agent issued %s, not %s", strings.Join(ids, ", "), want)
		}
		// A call cut short by the end of the wait is not an answer: keep
		// the agent's previous one ("no identity issued"), which says why.
		if last == nil || ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("spire: waiting for an X.509 SVID for %s from the Workload API at %s as uid %d (last answer: %v): %w", want, socket, os.Geteuid(), last, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

// RunFetcher is the re-executed side of FetchSVID: it polls the Workload
// API as the current user and prints the SVID's certificates (never its
// key) as PEM on stdout. It returns the exit status.
func RunFetcher(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fetch-svid", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", "", "the agent's Workload API socket")
	id := fs.String("id", "", "the SPIFFE ID to wait for")
	timeout := fs.Duration("timeout", DefaultTimeout, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	want, err := spiffeid.FromString(*id)
	if err != nil || *socket == "" {
		fmt.Fprintln(stderr, "fetch-svid: -socket and a valid -id are required")
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// The parent sends SIGTERM when its own wait ends.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()
	certs, err := pollSVID(ctx, *socket, want)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "spire: ")
		if ctx.Err() != nil {
			// The parent adds its own reason (deadline or cancellation).
			msg = strings.TrimSuffix(strings.TrimSuffix(msg, ": "+context.DeadlineExceeded.Error()), ": "+context.Canceled.Error())
			fmt.Fprintln(stderr, msg)
			return exitTimedOut
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	for _, c := range certs {
		if err := pem.Encode(stdout, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	return 0
}

// RunFetcherIfRequested runs RunFetcher and exits when this process was
// started as a fetcher (os.Args begin with FetcherArgs). Test binaries that
// call Start or FetchSVID call it first in TestMain.
func RunFetcherIfRequested() {
	if len(os.Args) > len(FetcherArgs) && slices.Equal(os.Args[1:1+len(FetcherArgs)], FetcherArgs) {
		os.Exit(RunFetcher(os.Args[1+len(FetcherArgs):], os.Stdout, os.Stderr))
	}
}

// limitedWriter keeps the first n bytes and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return len(p), nil
	}
	q := p
	if len(q) > l.n {
		q = q[:l.n]
	}
	l.n -= len(q)
	if _, err := l.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}
