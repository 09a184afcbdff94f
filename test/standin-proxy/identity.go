package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// parseTrustAnchors reads the PEM bundle of LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS:
// one or more CERTIFICATE blocks and nothing else. The proxy checks only that
// the value is non-empty when it reads the environment and fails later, when
// it builds its TLS roots, if the PEM is unusable; the stand-in checks both
// up front.
func parseTrustAnchors(s string) ([]*x509.Certificate, error) {
	rest := []byte(s)
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		if len(certs) == 0 {
			return nil, errors.New("no PEM CERTIFICATE block found")
		}
		return nil, errors.New("text after the last PEM block is not PEM")
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return certs, nil
}

// credentials is the SVID the stand-in holds: set once one has verified,
// replaced on rotation.
type credentials struct {
	id       string
	notAfter time.Time
	serial   string
}

// identityWatcher receives X.509 contexts from the Workload API and keeps
// the SVID whose SPIFFE ID is the configured server ID, as the proxy's SPIRE
// client does (linkerd/proxy/spire-client: it looks the ID up among the
// SVIDs of each update and ignores the rest).
type identityWatcher struct {
	log      *slog.Logger
	serverID string
	roots    *x509.CertPool

	current  atomic.Pointer[credentials]
	ready    chan struct{}
	once     sync.Once
	updates  atomic.Int64 // SVIDs accepted
	rejected atomic.Int64 // updates without a usable SVID
	swaps    swapLog      // every SVID put in use (swaps.go)
}

func newIdentityWatcher(log *slog.Logger, cfg *config) *identityWatcher {
	roots := x509.NewCertPool()
	for _, c := range cfg.anchors {
		roots.AddCert(c)
	}
	return &identityWatcher{log: log, serverID: cfg.serverID, roots: roots, ready: make(chan struct{})}
}

// Ready is closed once an SVID has verified.
func (w *identityWatcher) Ready() <-chan struct{} { return w.ready }

// Current is the SVID held, or nil.
func (w *identityWatcher) Current() *credentials { return w.current.Load() }

// OnX509ContextUpdate implements workloadapi.X509ContextWatcher.
func (w *identityWatcher) OnX509ContextUpdate(xc *workloadapi.X509Context) {
	var svid *x509svid.SVID
	for _, s := range xc.SVIDs {
		if s.ID.String() == w.serverID {
			svid = s
			break
		}
	}
	if svid == nil {
		w.rejected.Add(1)
		ids := make([]string, len(xc.SVIDs))
		for i, s := range xc.SVIDs {
			ids[i] = s.ID.String()
		}
		w.log.Error("Error processing SVID update: no matching SVID found", "want", w.serverID, "got", fmt.Sprint(ids))
		return
	}
	if err := w.verify(svid, time.Now()); err != nil {
		// The proxy keeps its previous certificate when an update does not
		// verify; so does the stand-in.
		w.rejected.Add(1)
		w.log.Error("Error processing SVID update", "error", err.Error())
		return
	}
	leaf := svid.Certificates[0]
	w.current.Store(&credentials{id: svid.ID.String(), notAfter: leaf.NotAfter, serial: leaf.SerialNumber.Text(16)})
	w.updates.Add(1)
	w.log.Info("Certified identity", "id", svid.ID.String(), "expiry", leaf.NotAfter.UTC().Format(time.RFC3339), "serial", leaf.SerialNumber.Text(16))
	if now := time.Now(); w.swaps.record(now, leaf) {
		w.log.Info("SVID swapped", "at", now.UTC().Format(time.RFC3339Nano), "serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	w.once.Do(func() { close(w.ready) })
}

// verify checks the SVID as the proxy's credential store does before it
// uses a certificate: the leaf carries the configured identity as its URI
// SAN and chains, through the SVID's own intermediates, to the trust
// anchors from the environment — not to the bundle the Workload API sent.
func (w *identityWatcher) verify(svid *x509svid.SVID, now time.Time) error {
	if len(svid.Certificates) == 0 {
		return errors.New("empty certificate chain")
	}
	leaf := svid.Certificates[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != w.serverID {
		return fmt.Errorf("leaf certificate's URI SAN %v is not %s", leaf.URIs, w.serverID)
	}
	inter := x509.NewCertPool()
	for _, c := range svid.Certificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:         w.roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("SVID %s does not verify against %s: %w", svid.ID, envTrustAnchors, err)
	}
	return nil
}

// OnX509ContextWatchError implements workloadapi.X509ContextWatcher.
func (w *identityWatcher) OnX509ContextWatchError(err error) {
	if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return // shutting down
	}
	w.log.Warn("Unexpected SPIRE Workload API response; retrying with a backoff", "error", err.Error())
}

// watchIdentity connects to the Workload API and feeds w until ctx ends.
// Connection failures and stream errors are retried on the proxy's backoff;
// only InvalidArgument ends the watch, as in the proxy.
func watchIdentity(ctx context.Context, log *slog.Logger, cfg *config, w *identityWatcher) error {
	b := cfg.spireBackoff
	// gRPC wants a positive base delay and a jitter fraction of at most 1.
	grpcBackoff := backoff.Config{BaseDelay: max(b.min, time.Millisecond), Multiplier: 2, Jitter: min(b.jitter, 1), MaxDelay: b.max}
	client, err := workloadapi.New(ctx,
		workloadapi.WithAddr("unix://"+cfg.workloadAPI),
		workloadapi.WithBackoffStrategy(b),
		workloadapi.WithLogger(spiffeLogger{log}),
		// gRPC's own reconnect backoff starts at 1s and grows to 120s; keep
		// it on the proxy's schedule too, so a socket that appears late
		// (SPIRE agent still starting) is picked up within one max backoff.
		workloadapi.WithDialOptions(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcBackoff,
			MinConnectTimeout: time.Second,
		})),
	)
	if err != nil {
		return fmt.Errorf("creating Workload API client for %s: %w", cfg.workloadAPI, err)
	}
	defer client.Close()
	return client.WatchX509Context(ctx, w)
}

// spiffeLogger sends go-spiffe's messages to slog at debug level: the
// watcher already reports what matters in the proxy's words.
type spiffeLogger struct{ log *slog.Logger }

func (l spiffeLogger) Debugf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Infof(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Warnf(format string, args ...any)  { l.log.Debug(fmt.Sprintf(format, args...)) }
func (l spiffeLogger) Errorf(format string, args ...any) { l.log.Debug(fmt.Sprintf(format, args...)) }
