package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// Deadlines for waiting on the processes; they only bound a wait and fail
// with what was awaited. Start to /readyz takes 2.5-3.8 s idle on 2 cores
// (docs/kube-apiserver.md), much longer while other builds run.
const (
	startDeadline = 3 * time.Minute
	stopGrace     = 20 * time.Second
)

// ServiceCIDR is the API server's --service-cluster-ip-range; a
// dual-stack server (UseDualStack) adds ServiceCIDR6.
const (
	ServiceCIDR  = "10.96.0.0/16"
	ServiceCIDR6 = "fd00:10:96::/108" // 20 bits, the most an IPv6 range may have
)

// dualStack makes servers started from now on dual-stack, IPv4 first.
var dualStack atomic.Bool

// UseDualStack makes the servers this test binary starts from now on
// dual-stack (--service-cluster-ip-range ServiceCIDR,ServiceCIDR6, IPv4
// first, as most dual-stack clusters are). Call it in TestMain before
// the first Get.
func UseDualStack() { dualStack.Store(true) }

// serviceCIDRs is --service-cluster-ip-range.
func serviceCIDRs(dual bool) string {
	if dual {
		return ServiceCIDR + "," + ServiceCIDR6
	}
	return ServiceCIDR
}

// Server is a running etcd + kube-apiserver pair.
type Server struct {
	// Dir holds etcd's data, the certificates, keys and logs.
	Dir string
	// Host is the API server's URL, https://127.0.0.1:PORT.
	Host string
	// CAData verifies the API server's serving certificate.
	CAData []byte

	adminToken string
	bins       string
	dualStack  bool
	etcdURL    string
	apiPort    int
	etcd       *process
	apiserver  *process
}

// Start starts etcd and kube-apiserver and waits until /readyz answers.
// It does not apply the CRD; see Get, which does.
func Start(ctx context.Context) (_ *Server, err error) {
	bins, err := BinDir()
	if err != nil {
		return nil, err
	}
	removeStaleDirs()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("make the API server's directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return nil, fmt.Errorf("record the directory's owner: %w", err)
	}
	s := &Server{Dir: dir, bins: bins, dualStack: dualStack.Load()}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s.etcdURL = "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	s.apiPort = ports[2]
	s.Host = "https://127.0.0.1:" + strconv.Itoa(s.apiPort)

	if err := s.writeCredentials(); err != nil {
		return nil, err
	}
	s.etcd, err = startProcess("etcd", filepath.Join(bins, "etcd"), filepath.Join(dir, "etcd.log"),
		"--name", "kubetest",
		"--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", s.etcdURL,
		"--advertise-client-urls", s.etcdURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "kubetest="+peerURL,
		// Test data only: fsync would make every write wait for the disk
		// that several helpers share.
		"--unsafe-no-fsync",
		"--log-level", "warn",
	)
	if err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, s.etcd, s.etcdURL+"/health", http.DefaultClient); err != nil {
		return nil, err
	}
	if err := s.StartAPIServer(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// writeCredentials writes the admin token file and the service account
// signing key (for TokenRequest, which tests use to get least-privilege
// tokens).
func (s *Server) writeCredentials() error {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return fmt.Errorf("make admin token: %w", err)
	}
	s.adminToken = hex.EncodeToString(tok)
	line := s.adminToken + ",admin,admin-uid,system:masters\n"
	if err := os.WriteFile(filepath.Join(s.Dir, "tokens.csv"), []byte(line), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("make service account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode service account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	// The API server reads the signing key as SEC1 and the verifying key
	// as a PKIX public key (k8s.io/client-go/util/keyutil).
	files := map[string][]byte{
		"sa.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}),
		"sa.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return fmt.Errorf("write service account key: %w", err)
		}
	}
	return nil
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer) on the
// same port with the same certificates, so clients keep working, and waits
// for /readyz.
func (s *Server) StartAPIServer(ctx context.Context) error {
	if s.apiserver != nil && !s.apiserver.exited() {
		return errors.New("kube-apiserver is already running")
	}
	p, err := startProcess("kube-apiserver", filepath.Join(s.bins, "kube-apiserver"), filepath.Join(s.Dir, "kube-apiserver.log"),
		"--etcd-servers", s.etcdURL,
		"--bind-address", "127.0.0.1",
		"--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(s.apiPort),
		"--cert-dir", filepath.Join(s.Dir, "certs"),
		"--token-auth-file", filepath.Join(s.Dir, "tokens.csv"),
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", filepath.Join(s.Dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(s.Dir, "sa.key"),
		"--authorization-mode", "RBAC",
		// Room for 65k Services: the registration benchmark makes one
		// per simulated host (ServiceCIDR "kubernetes" reflects it).
		"--service-cluster-ip-range", serviceCIDRs(s.dualStack),
		// No controller-manager creates default ServiceAccounts, so the
		// admission plugin that requires them would refuse Pods.
		"--disable-admission-plugins", "ServiceAccount",
		// The reconciler of the "kubernetes" Service's endpoints refuses
		// a loopback address and logs an error every 10 s; nothing here
		// needs that Service.
		"--endpoint-reconciler-type", "none",
	)
	if err != nil {
		return err
	}
	s.apiserver = p
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := waitHTTP(ctx, p, s.Host+"/readyz", insecure); err != nil {
		return err
	}
	ca, err := os.ReadFile(filepath.Join(s.Dir, "certs", "apiserver.crt"))
	if err != nil {
		return fmt.Errorf("read the API server's self-signed certificate: %w", err)
	}
	s.CAData = ca
	return nil
}

// StopAPIServer stops kube-apiserver only (etcd keeps the data), to test
// what clients do while the API is down.
func (s *Server) StopAPIServer() {
	if s.apiserver != nil {
		s.apiserver.stop(stopGrace)
	}
}

// Stop stops both processes by PID and removes the directory.
func (s *Server) Stop() {
	s.StopAPIServer()
	if s.etcd != nil {
		s.etcd.stop(stopGrace)
	}
	_ = os.RemoveAll(s.Dir)
}

// APIServerPID is kube-apiserver's process ID, for /proc statistics.
func (s *Server) APIServerPID() int { return s.apiserver.pid() }

// EtcdPID is etcd's process ID.
func (s *Server) EtcdPID() int { return s.etcd.pid() }

// AdminConfig returns a client configuration with system:masters rights.
func (s *Server) AdminConfig() *rest.Config {
	return s.TokenConfig(s.adminToken)
}

// TokenConfig returns a client configuration that authenticates with
// token, for example a ServiceAccount token from TokenRequest.
func (s *Server) TokenConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            s.Host,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.CAData},
		UserAgent:       "meshexp-test",
	}
}

const (
	dirPrefix = "meshexp-kubetest-"
	ownerFile = "owner.pid"
)

// removeStaleDirs removes the directories of test binaries that died
// without cleaning up (a go test timeout panics past TestMain); their
// processes went with them (Pdeathsig). A directory whose owner still runs
// belongs to a parallel test binary and is kept.
func removeStaleDirs() {
	if _, err := os.Stat("/proc/self"); err != nil {
		return // no /proc to tell a live owner from a dead one
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours to judge
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			_ = os.RemoveAll(d)
		}
	}
}

// waitHTTP polls url until it answers 200, the process exits, or the
// deadline passes.
func waitHTTP(ctx context.Context, p *process, url string, hc *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, startDeadline)
	defer cancel()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before %s answered (%v); last log lines:\n%s", p.name, url, p.err, p.logTail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s: %s did not answer 200 within %s (last: %v); last log lines:\n%s", p.name, url, startDeadline, last, p.logTail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct loopback ports free at the time of the call.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
