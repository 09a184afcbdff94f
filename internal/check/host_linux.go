//go:build linux

package check

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// probeChain is the throwaway chain the nat probe names; it is only ever
// handed to `iptables-restore --test`, which commits nothing.
const probeChain = "MESHEXP_CHECK"

// NATProbe checks that the nat table, the owner match and the REDIRECT
// target work, by handing restore (iptables-restore or ip6tables-restore
// of the backend in use) a transaction with --test: the kernel and the
// extensions parse it, nothing is committed.
func NATProbe(restore string, proxyUID uint32, port uint16) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if strings.Contains(filepath.Base(restore), "legacy") && !legacyNATExists() {
			// Reading the legacy nat table would create it: judge by the
			// kernel modules instead.
			return natModules()
		}
		in := fmt.Sprintf("*nat\n:%s - [0:0]\n-A %s -p tcp -m owner --uid-owner %d -j RETURN\n-A %s -p tcp -j REDIRECT --to-ports %d\nCOMMIT\n",
			probeChain, probeChain, proxyUID, probeChain, port)
		cmd := exec.CommandContext(ctx, restore, "--test", "--noflush")
		cmd.Stdin = strings.NewReader(in)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s --test refused a nat rule with -m owner and -j REDIRECT: %v: %s", restore, err, firstLine(out))
		}
		return restore, nil
	}
}

// capNetAdmin is CAP_NET_ADMIN's bit (include/uapi/linux/capability.h).
const capNetAdmin = 12

// NetAdmin checks this process's effective capabilities for CAP_NET_ADMIN,
// which interception, routes and the control mark need.
func NetAdmin(context.Context) (string, error) {
	eff, err := effectiveCaps("/proc/self/status")
	if err != nil {
		return "", err
	}
	if eff&(1<<capNetAdmin) == 0 {
		return "", fmt.Errorf("CAP_NET_ADMIN is not in this process's effective capabilities (CapEff %016x)", eff)
	}
	return "", nil
}

func effectiveCaps(status string) (uint64, error) {
	f, err := os.Open(status)
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("read capabilities: CapEff %q: %w", v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("read capabilities: no CapEff line in %s", status)
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(l)
}

// legacyNATExists says whether the legacy nat table exists in the calling
// thread's network namespace.
func legacyNATExists() bool {
	b, err := os.ReadFile("/proc/thread-self/net/ip_tables_names")
	if err != nil {
		// Unreadable (root only): let iptables-restore --test answer.
		return !os.IsNotExist(err)
	}
	return slices.Contains(strings.Fields(string(b)), "nat")
}

// natModules checks that the nat table, the owner match and the REDIRECT
// target are registered (/proc/net/ip_tables_matches, _targets), built in
// (/proc/config.gz, modules.builtin) or loadable (modules.dep); it loads
// nothing.
func natModules() (string, error) {
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	rel := unix.ByteSliceToString(uts.Release[:])
	var known []byte
	for _, f := range []string{"/proc/modules", "/lib/modules/" + rel + "/modules.builtin", "/lib/modules/" + rel + "/modules.dep"} {
		b, _ := os.ReadFile(f)
		known = append(known, b...)
	}
	if f, err := os.Open("/proc/config.gz"); err == nil {
		if z, err := gzip.NewReader(f); err == nil {
			b, _ := io.ReadAll(z)
			known = append(known, b...)
		}
		f.Close()
	}
	registered := func(file, name string) bool {
		b, _ := os.ReadFile("/proc/thread-self/net/" + file)
		return slices.Contains(strings.Fields(string(b)), name)
	}
	has := func(module, config string) bool {
		return bytes.Contains(known, []byte(module+" ")) || bytes.Contains(known, []byte("/"+module+".ko")) ||
			bytes.Contains(known, []byte(config+"=y")) || bytes.Contains(known, []byte(config+"=m"))
	}
	var missing []string
	if !has("iptable_nat", "CONFIG_IP_NF_NAT") {
		missing = append(missing, "iptable_nat")
	}
	if !registered("ip_tables_matches", "owner") && !has("xt_owner", "CONFIG_NETFILTER_XT_MATCH_OWNER") {
		missing = append(missing, "xt_owner")
	}
	if !registered("ip_tables_targets", "REDIRECT") && !has("xt_REDIRECT", "CONFIG_NETFILTER_XT_TARGET_REDIRECT") {
		missing = append(missing, "xt_REDIRECT")
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("the kernel (%s) has no %s: not registered, built in or loadable", rel, strings.Join(missing, ", "))
	}
	return "legacy nat table not created yet; nat, owner and REDIRECT available", nil
}
