package spire

import (
	"fmt"
	"path/filepath"
	"time"
)

// Mode says where the identity comes from.
type Mode string

// Modes.
const (
	ModeEmbedded Mode = "embedded" // demo only: server and agent on this host
	ModeExternal Mode = "external" // an agent joining a remote server
	ModeExisting Mode = "existing" // an agent that already runs
)

// Defaults. The demo's values are kept where they do no harm.
const (
	DefaultTrustDomain = "root.linkerd.cluster.local"
	// DefaultProxyUID is the uid Linkerd's chart runs the proxy as
	// (linkerd2 charts/partials/templates/proxy.tpl, runAsUser 2102).
	DefaultProxyUID   = 2102
	DefaultDataDir    = "/var/lib/meshexp/spire"
	DefaultSocketPath = "/run/meshexp/spire/public/api.sock"
	// DefaultExistingSocketPath is SPIRE's own default Workload API socket
	// (spire cmd/spire-agent/cli/common DefaultSocketPath), where an agent
	// that meshexp did not start most likely listens; the demo used it too.
	DefaultExistingSocketPath = "/tmp/spire-agent/public/api.sock"
	DefaultBinDir             = "/opt/spire/bin" // the demo image's place
	DefaultServerBindAddress  = "127.0.0.1"
	DefaultServerPort         = 8081 // SPIRE's default bind_port
	DefaultTimeout            = 60 * time.Second
	DefaultStopGrace          = 5 * time.Second
	// BinDirEnv names the directory holding spire-server and spire-agent.
	BinDirEnv = "MESHEXP_SPIRE_BIN_DIR"
)

// maxSocketPath is the longest path a unix socket can bind: sun_path holds
// 108 bytes including the terminating NUL (linux include/uapi/linux/un.h).
const maxSocketPath = 107

// Options is everything this package needs; the bootstrap maps the shared
// configuration onto it. Zero values take the defaults above.
type Options struct {
	Mode Mode

	// TrustDomain of the SPIFFE IDs; the workload's ID is
	// spiffe://<TrustDomain>/<WorkloadName>.
	TrustDomain  string
	WorkloadName string

	// TrustAnchorPath is the mesh's trust anchor (ca.crt): SVIDs are
	// verified against it in every mode; in embedded mode it is also the
	// agent's trust bundle and, unless UpstreamCertPath is set, the CA the
	// server signs with.
	TrustAnchorPath string

	// ProxyUID is the only uid the registration entry selects
	// (unix:uid:<ProxyUID>); ProxyGID is the gid the SVID check runs as
	// (default ProxyUID). 0 means the default, 2102: an entry for uid 0
	// would hand the proxy's identity to every root process, the demo's flaw.
	ProxyUID uint32
	ProxyGID uint32

	// BinDir holds spire-server and spire-agent; empty: $PATH, then
	// /opt/spire/bin. The bootstrap fills it from --spire-bin-dir /
	// MESHEXP_SPIRE_BIN_DIR.
	BinDir string
	// DataDir holds the generated configs, the join token file and SPIRE's
	// state (server/ and agent/ below it), kept between runs while it fits
	// the settings (state.go).
	DataDir string
	// SocketPath is the agent's Workload API socket, what the proxy uses.
	// Default /run/meshexp/spire/public/api.sock (existing mode: SPIRE's default,
	// /tmp/spire-agent/public/api.sock). Missing directories above it are
	// created 0755 so the proxy uid can connect; existing ones are never
	// changed. Whatever is at the path must be a stale socket of meshexp's
	// own agent, or nothing. The entry's selector decides who gets which
	// SVID.
	SocketPath string

	// Timeout bounds Start from the first process to the verified SVID.
	Timeout time.Duration
	// StopGrace is how long a process has between SIGTERM and SIGKILL.
	StopGrace time.Duration

	// Embedded mode. UpstreamCertPath/UpstreamKeyPath is the CA SPIRE's own
	// CA is signed by: the trust anchor itself (demo compatibility; then
	// UpstreamCertPath may be empty) or an intermediate (meshexp certs
	// intermediate), in which case UpstreamBundlePath holds the roots above
	// it (default TrustAnchorPath).
	UpstreamCertPath   string
	UpstreamKeyPath    string
	UpstreamBundlePath string
	// ServerBindAddress and ServerPort: where the embedded server listens
	// for its agent (default 127.0.0.1:8081).
	ServerBindAddress string

	// External mode: the remote server and the agent's node attestation.
	// ServerPort is shared with embedded mode.
	ServerAddress   string
	ServerPort      uint16
	TrustBundlePath string // the server's CA bundle; default TrustAnchorPath
	// JoinToken or JoinTokenFile (one of them), or X509PopCertPath and
	// X509PopKeyPath. The token's value is never logged and never put on a
	// command line.
	JoinToken       string
	JoinTokenFile   string
	X509PopCertPath string
	X509PopKeyPath  string

	// Starter starts SPIRE's processes; nil: ExecStarter with StopGrace.
	Starter Starter
	// FetcherPath is the binary re-executed as the proxy uid to fetch the
	// SVID (with FetcherArgs); empty: this process's own executable.
	FetcherPath string

	// keptAgentSVID is set by Start when the embedded agent's kept SVID
	// is reused: its config then names no join token file.
	keptAgentSVID bool

	// Embedded mode lifetimes (ttl.go): SVIDTTL is the workload entry's
	// X.509 SVID TTL and the server's default_x509_svid_ttl (default 24h);
	// CATTL the server's ca_ttl (default 168h); AgentTTL, when set, the
	// server's agent_ttl (default: SPIRE's, the SVID TTL).
	SVIDTTL  time.Duration
	CATTL    time.Duration
	AgentTTL time.Duration
}

// withDefaults returns o with every empty field set to its default. It is
// pure: no file system access.
func (o Options) withDefaults() Options {
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.ProxyUID == 0 {
		o.ProxyUID = DefaultProxyUID
	}
	if o.ProxyGID == 0 {
		o.ProxyGID = o.ProxyUID
	}
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.SocketPath == "" {
		o.SocketPath = DefaultSocketPath
		if o.Mode == ModeExisting {
			o.SocketPath = DefaultExistingSocketPath
		}
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.StopGrace == 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.Mode == ModeEmbedded {
		if o.UpstreamCertPath == "" {
			o.UpstreamCertPath = o.TrustAnchorPath
		}
		if o.UpstreamBundlePath == "" && o.UpstreamCertPath != o.TrustAnchorPath {
			o.UpstreamBundlePath = o.TrustAnchorPath
		}
		if o.ServerBindAddress == "" {
			o.ServerBindAddress = DefaultServerBindAddress
		}
	}
	if o.ServerPort == 0 {
		o.ServerPort = DefaultServerPort
	}
	if o.TrustBundlePath == "" {
		o.TrustBundlePath = o.TrustAnchorPath
	}
	return o
}

// SPIFFEID is the workload's identity, spiffe://<trust domain>/<name>.
func (o Options) SPIFFEID() string {
	o = o.withDefaults()
	return "spiffe://" + o.TrustDomain + "/" + o.WorkloadName
}

// layout is where the files of a run live, all derived from Options.
type layout struct {
	serverDir, serverConf, serverData, serverSocket string
	agentDir, agentConf, agentData, tokenFile       string
}

func (o Options) layout() layout {
	s := filepath.Join(o.DataDir, "server")
	a := filepath.Join(o.DataDir, "agent")
	return layout{
		serverDir:    s,
		serverConf:   filepath.Join(s, "server.conf"),
		serverData:   filepath.Join(s, "data"),
		serverSocket: filepath.Join(s, "api.sock"),
		agentDir:     a,
		agentConf:    filepath.Join(a, "agent.conf"),
		agentData:    filepath.Join(a, "data"),
		tokenFile:    filepath.Join(a, "join_token"),
	}
}

// tokenPath is the file the agent reads its join token from, or "" when it
// attests another way.
func (o Options) tokenPath() string {
	switch {
	case o.Mode == ModeEmbedded && !o.keptAgentSVID:
		return o.layout().tokenFile
	case o.Mode == ModeExternal && o.JoinTokenFile != "":
		return o.JoinTokenFile
	case o.Mode == ModeExternal && o.JoinToken != "":
		return o.layout().tokenFile
	}
	return ""
}

// OptionError is a bad Options field. Option is the field's name in
// Options, so a caller can name its own flag or variable for it.
type OptionError struct {
	Option string
	Value  string
	Err    error
	Fix    string
}

func (e *OptionError) Error() string { return "spire: " + e.Describe(e.Option) }

// Describe is the error's message with the option called name, so a
// command can name its own flag ("--spire-socket") instead of the field.
func (e *OptionError) Describe(name string) string {
	msg := name
	if e.Value != "" {
		msg += fmt.Sprintf(" %q", e.Value)
	}
	msg += ": " + e.Err.Error()
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

func (e *OptionError) Unwrap() error { return e.Err }
