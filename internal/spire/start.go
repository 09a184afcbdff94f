package spire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// childEnv is the whole environment SPIRE's processes get: nothing of
// meshexp's own, which may hold a join token or paths to keys.
var childEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// Identity is a ready identity source: the Workload API socket the proxy
// uses, the SVID verified at start, and the SPIRE processes started here.
type Identity struct {
	mode   Mode
	socket string
	svid   *SVID
	logger *slog.Logger
	server Process // nil unless embedded
	agent  Process // nil in existing mode
	// removeOnStop are files holding secrets that outlive no run.
	removeOnStop []string

	stopOnce sync.Once
	stopErr  error
}

// SocketPath is the agent's Workload API socket (for
// LINKERD2_PROXY_IDENTITY_SPIRE_SOCKET, as unix://<path>).
func (i *Identity) SocketPath() string { return i.socket }

// SVID is the SVID verified when the identity became ready.
func (i *Identity) SVID() *SVID { return i.svid }

// Agent is the spire-agent started here (nil in existing mode).
func (i *Identity) Agent() Process { return i.agent }

// Server is the spire-server started here (nil unless embedded).
func (i *Identity) Server() Process { return i.server }

// Stop stops the agent, then the server, each with SIGTERM and then
// SIGKILL after the grace period or when ctx ends. It is safe to call more
// than once.
func (i *Identity) Stop(ctx context.Context) error {
	i.stopOnce.Do(func() {
		var errs []error
		for _, p := range []struct {
			name string
			p    Process
		}{{"spire-agent", i.agent}, {"spire-server", i.server}} {
			if p.p == nil {
				continue
			}
			if err := p.p.Stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("spire: stopping %s: %w", p.name, err))
			}
		}
		for _, f := range i.removeOnStop {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("spire: removing %s: %w", f, err))
			}
		}
		i.stopErr = errors.Join(errs...)
	})
	return i.stopErr
}

// Start brings up the identity source opts describes and returns once a
// process running as the proxy uid has received an X.509 SVID for
// spiffe://<trust domain>/<workload name> that verifies against the trust
// anchor. Within Options.Timeout, or it fails saying what it waited for;
// on failure nothing it started is left running.
func Start(ctx context.Context, opts Options, logger *slog.Logger) (*Identity, error) {
	o := opts.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	begin := time.Now()
	ctx, cancelTimeout := context.WithTimeout(ctx, o.Timeout)
	defer cancelTimeout()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)

	r := &run{o: o, logger: logger, secrets: &secrets{}, diag: newDiagnosis(o), fail: fail}
	r.starter = o.Starter
	if r.starter == nil {
		r.starter = ExecStarter(logger, o.StopGrace)
	}
	id := &Identity{mode: o.Mode, socket: o.SocketPath, logger: logger}

	var err error
	switch o.Mode {
	case ModeEmbedded:
		logger.Warn("SPIRE embedded mode is for demos only: a SPIRE server on this host holds a CA key of the mesh; use external mode in production",
			"upstream_cert", o.UpstreamCertPath)
		err = r.startEmbedded(ctx, id)
	case ModeExternal:
		err = r.startExternal(ctx, id)
	}
	if err == nil {
		logger.Info("waiting for the proxy's SVID", "spiffe_id", o.SPIFFEID(), "uid", o.ProxyUID, "socket", o.SocketPath)
		id.svid, err = FetchSVID(ctx, FetchOptions{
			SocketPath: o.SocketPath, ID: o.SPIFFEID(), UID: o.ProxyUID, GID: o.ProxyGID,
			TrustAnchorPath: o.TrustAnchorPath, Executable: o.FetcherPath,
		})
		if err != nil {
			err = fetchHint(err, o)
		}
	}
	if err != nil {
		err = r.reason(ctx, err)
		r.stopping.Store(true)
		stopCtx, cancel := context.WithTimeout(context.Background(), o.StopGrace+10*time.Second)
		defer cancel()
		if serr := id.Stop(stopCtx); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	r.ready.Store(true)
	leaf := id.svid.Certificates[0]
	logger.Info("identity ready", "mode", string(o.Mode), "spiffe_id", id.svid.ID.String(), "socket", o.SocketPath,
		"expires", leaf.NotAfter.UTC().Format(time.RFC3339), "elapsed", time.Since(begin).Round(time.Millisecond))
	return id, nil
}

// noIdentityIssued is what the agent logs when a caller's selectors match
// no entry (spire pkg/agent/endpoints/workload/handler.go).
const noIdentityIssued = "No identity issued"

// unprefixed shows an error without its "spire: " prefix, for wrapping
// inside another spire error.
type unprefixed struct{ error }

func (u unprefixed) Error() string { return strings.TrimPrefix(u.error.Error(), "spire: ") }
func (u unprefixed) Unwrap() error { return u.error }

// fetchHint adds the likely fix to a failed SVID fetch.
func fetchHint(err error, o Options) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "no identity issued") && o.Mode != ModeEmbedded:
		return fmt.Errorf("%w (the agent has no entry for %s selecting unix:uid:%d: register one on the SPIRE server, parented to this agent's SPIFFE ID or an alias of it)", err, o.SPIFFEID(), o.ProxyUID)
	case strings.Contains(msg, "no such file or directory") || strings.Contains(msg, "connection refused"):
		return fmt.Errorf("%w (no SPIRE agent is serving the Workload API at %s)", err, o.SocketPath)
	case strings.Contains(msg, "permission denied"):
		return fmt.Errorf("%w (uid %d may not reach %s: make its directories searchable and the socket writable for that uid)", err, o.ProxyUID, o.SocketPath)
	}
	return err
}

// run is the state of one Start.
type run struct {
	o        Options
	logger   *slog.Logger
	starter  Starter
	secrets  *secrets
	diag     *diagnosis
	fail     context.CancelCauseFunc
	ready    atomic.Bool
	stopping atomic.Bool // a failed start is stopping what it started
}

// reason picks the error to report: a failure SPIRE logged or a process
// death (the cause ctx was cancelled with) beats the wait that noticed it.
func (r *run) reason(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause != nil && !errors.Is(cause, context.DeadlineExceeded) && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(cause, context.DeadlineExceeded) {
		msg := fmt.Sprintf("spire: no verified SVID within %s (%s mode)", r.o.Timeout, r.o.Mode)
		if h := r.diag.hints(); len(h) > 0 {
			msg += ": " + strings.Join(h, "; ")
		}
		return fmt.Errorf("%s; gave up %w", msg, unprefixed{err})
	}
	return err
}

// prepareState checks the sockets and the kept state, clears the state if
// it is stale, records this run's inputs, creates the directories and
// writes the configs. It returns o resolved (resolveUpstream) and whether
// the previous run's state was kept.
func (r *run) prepareState() (bool, error) {
	o, l := r.o, r.o.layout()
	old := o.readState()
	if err := checkSocketPath("SocketPath", o.SocketPath, old != nil && old.Socket == o.SocketPath); err != nil {
		return false, err
	}
	if o.Mode == ModeEmbedded {
		if err := checkSocketPath("DataDir", l.serverSocket, true); err != nil {
			return false, err
		}
	}
	resolved, upstream, err := o.resolveUpstream()
	if err != nil {
		return false, err
	}
	inputs, err := resolved.stateInputs(upstream)
	if err != nil {
		return false, err
	}
	warm, err := r.keepOrClearState(old, inputs)
	if err != nil {
		return false, err
	}
	r.o = resolved
	dirs := []string{l.agentDir, l.agentData}
	if o.Mode == ModeEmbedded {
		dirs = append(dirs, l.serverDir, l.serverData)
	}
	if err := r.prepareDirs(dirs...); err != nil {
		return false, err
	}
	if resolved.UpstreamCertPath != o.UpstreamCertPath {
		if err := writeFile(resolved.UpstreamCertPath, upstream, 0o644); err != nil {
			return false, err
		}
	}
	return warm, nil
}

func (r *run) startEmbedded(ctx context.Context, id *Identity) error {
	o, l := r.o, r.o.layout()
	serverBin, err := o.binary("spire-server")
	if err != nil {
		return err
	}
	agentBin, err := o.binary("spire-agent")
	if err != nil {
		return err
	}
	warm, err := r.prepareState()
	if err != nil {
		return err
	}
	// A kept agent SVID needs no join token (and a token it would not use
	// would only leave one more alias entry in the datastore).
	r.o.keptAgentSVID = warm && keptAgentSVID(l.agentData, time.Now())
	if err := removeIfExists(l.tokenFile); err != nil {
		return err
	}
	if err := r.writeConfigs(); err != nil {
		return err
	}
	o = r.o

	server, err := r.startProcess(ctx, "spire-server", serverBin, l.serverConf)
	if err != nil {
		return err
	}
	id.server = server
	conn, err := dialUnix(l.serverSocket)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.logger.Info("waiting for the SPIRE server", "admin_socket", l.serverSocket)
	if err := waitServing(ctx, conn, "the SPIRE server's health on its admin socket "+l.serverSocket); err != nil {
		return err
	}
	reg := registration{
		trustDomain: o.TrustDomain, workload: o.WorkloadName, proxyUID: o.ProxyUID,
		tokenTTL: max(o.Timeout, time.Minute), svidTTL: o.svidTTL(),
	}
	if err := createEntry(ctx, conn, reg); err != nil {
		return fmt.Errorf("spire: %w", err)
	}
	r.logger.Debug("registered the workload", "spiffe_id", o.SPIFFEID(), "selector", fmt.Sprintf("unix:uid:%d", o.ProxyUID), "parent", "spiffe://"+o.TrustDomain+agentPath)
	if o.keptAgentSVID {
		r.logger.Info("the SPIRE agent reuses its kept SVID; no join token needed")
	} else {
		token, err := createJoinToken(ctx, conn, reg)
		if err != nil {
			return fmt.Errorf("spire: %w", err)
		}
		r.secrets.add(token)
		if err := writeSecret(l.tokenFile, token); err != nil {
			return err
		}
		id.removeOnStop = append(id.removeOnStop, l.tokenFile)
	}

	agent, err := r.startProcess(ctx, "spire-agent", agentBin, l.agentConf)
	if err != nil {
		return err
	}
	id.agent = agent
	return r.waitAgent(ctx)
}

func (r *run) startExternal(ctx context.Context, id *Identity) error {
	o, l := r.o, r.o.layout()
	agentBin, err := o.binary("spire-agent")
	if err != nil {
		return err
	}
	// The agent's state is kept while it fits the settings: with its
	// stored SVID a restarted agent needs no new join token (join tokens
	// are single-use).
	if _, err := r.prepareState(); err != nil {
		return err
	}
	switch {
	case o.JoinToken != "":
		r.secrets.add(o.JoinToken)
		if err := writeSecret(l.tokenFile, o.JoinToken); err != nil {
			return err
		}
		id.removeOnStop = append(id.removeOnStop, l.tokenFile)
	case o.JoinTokenFile != "":
		data, err := os.ReadFile(o.JoinTokenFile)
		if err != nil {
			return &OptionError{Option: "JoinTokenFile", Value: o.JoinTokenFile, Err: unwrapPath(err), Fix: "make the file readable by root"}
		}
		r.secrets.add(string(data))
	}
	if err := r.writeConfigs(); err != nil {
		return err
	}
	agent, err := r.startProcess(ctx, "spire-agent", agentBin, l.agentConf)
	if err != nil {
		return err
	}
	id.agent = agent
	return r.waitAgent(ctx)
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spire: removing %s: %w", path, err)
	}
	return nil
}

func (r *run) waitAgent(ctx context.Context) error {
	conn, err := dialUnix(r.o.SocketPath)
	if err != nil {
		return err
	}
	defer conn.Close()
	host := r.o.ServerAddress
	if r.o.Mode == ModeEmbedded {
		host = r.o.ServerBindAddress
	}
	what := fmt.Sprintf("the SPIRE agent to attest to the server at %s:%d and serve the Workload API on %s", host, r.o.ServerPort, r.o.SocketPath)
	r.logger.Info("waiting for the SPIRE agent", "server", fmt.Sprintf("%s:%d", host, r.o.ServerPort), "socket", r.o.SocketPath)
	return waitServing(ctx, conn, what)
}

// startProcess starts a SPIRE binary with its config, its output forwarded
// to the logger, and its death before readiness turned into the failure of
// the start.
func (r *run) startProcess(ctx context.Context, name, bin, conf string) (Process, error) {
	watch := func(e logEntry) {
		if r.ready.Load() {
			return
		}
		if err := r.diag.note(name, e); err != nil {
			r.fail(err)
		}
	}
	// Until the entry reaches the agent, every poll for the SVID makes the
	// agent log an error; that is the wait, not a fault.
	// Once a failed start stops them, SPIRE reports the interruption
	// ("Agent crashed: context canceled"); the start's error says why.
	quiet := func(e logEntry) bool {
		return r.stopping.Load() || (!r.ready.Load() && e.Msg == noIdentityIssued)
	}
	stdout, stderr, t := newLogSinks(name, r.logger, r.secrets, watch, quiet)
	c := Command{
		Name: name, Path: bin, Args: []string{"run", "-config", conf}, Env: childEnv,
		Stdout: stdout, Stderr: stderr, Restart: true,
		OnExit: func(err error) {
			if r.ready.Load() {
				return
			}
			r.fail(fmt.Errorf("spire: %s exited before the identity was ready (%s); its last output:\n%s", name, exitReason(err), t))
		},
	}
	p, err := r.starter(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("spire: %w", err)
	}
	return p, nil
}

func (r *run) prepareDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("spire: creating %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("spire: restricting %s to its owner: %w", d, err)
		}
	}
	return prepareSocketDir(r.o.SocketPath)
}

func (r *run) writeConfigs() error {
	files, err := RenderConfigs(r.o)
	if err != nil {
		return err
	}
	for path, content := range files {
		if err := writeFile(path, []byte(content), 0o600); err != nil {
			return err
		}
		r.logger.Debug("wrote SPIRE config", "path", path)
	}
	return nil
}

// writeSecret writes a secret 0600 (created with that mode, never wider).
func writeSecret(path, value string) error {
	return writeFile(path, []byte(value+"\n"), 0o600)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("spire: writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("spire: writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("spire: writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("spire: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("spire: writing %s: %w", path, err)
	}
	return nil
}
