//go:build linux

package netfilter

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
)

// modeOf is the word `iptables --version` prints for each backend.
var modeOf = map[Backend]string{BackendLegacy: "(legacy)", BackendNFT: "(nf_tables)"}

// findTools finds the save and restore commands of a backend for a family:
// the suffixed names (iptables-nft-save) that Debian, Ubuntu, Fedora and
// Alpine ship, or else the plain names when their --version says they are
// that backend.
func findTools(ctx context.Context, b Backend, f Family) (tools, error) {
	prefix := "iptables"
	if f == IPv6 {
		prefix = "ip6tables"
	}
	flavour := strings.TrimPrefix(string(b), "iptables-")
	var t tools
	for _, op := range []string{"save", "restore"} {
		name := prefix + "-" + flavour + "-" + op
		if p, err := exec.LookPath(name); err == nil {
			if op == "save" {
				t.save = p
			} else {
				t.restore = p
			}
			continue
		}
		plain := prefix + "-" + op
		p, err := exec.LookPath(plain)
		if err != nil {
			return tools{}, fmt.Errorf("netfilter: neither %s nor %s is installed; install the iptables package (apt-get install iptables)", name, plain)
		}
		out, _ := exec.CommandContext(ctx, p, "--version").CombinedOutput()
		if !bytes.Contains(out, []byte(modeOf[b])) {
			return tools{}, fmt.Errorf("netfilter: %s is not installed and %s is another backend (%s); choose that backend or install %s",
				name, plain, strings.TrimSpace(string(out)), name)
		}
		if op == "save" {
			t.save = p
		} else {
			t.restore = p
		}
	}
	return t, nil
}

// Detect picks the backend the host already uses, as Linkerd's proxy-init
// does (linkerd2-proxy-init pkg/iptables/detect.go, after Calico's felix):
// the one holding kubelet's canary chains (KUBE-IPTABLES-HINT,
// KUBE-KUBELET-CANARY) if any; else the one with more rules; on a tie the
// system's default `iptables` (its alternative), else iptables-nft. Unlike
// proxy-init it dumps whole tables instead of `-t mangle`, because naming a
// table creates it with the legacy backend and detection must change
// nothing. The reason says what decided.
func Detect(ctx context.Context, logger *slog.Logger) (Backend, string) {
	dumps := map[Backend][]byte{}
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		for _, f := range []Family{IPv4, IPv6} {
			t, err := findTools(ctx, b, f)
			if err != nil {
				continue
			}
			out, err := exec.CommandContext(ctx, t.save).Output()
			if err != nil {
				logger.Debug("backend detection: dump failed", "cmd", t.save, "err", err)
				continue
			}
			dumps[b] = append(dumps[b], out...)
		}
	}
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		if bytes.Contains(dumps[b], []byte("KUBE-IPTABLES-HINT")) || bytes.Contains(dumps[b], []byte("KUBE-KUBELET-CANARY")) {
			return b, fmt.Sprintf("auto: %s holds kubelet's canary chains", b)
		}
	}
	nft, legacy := countRules(dumps[BackendNFT]), countRules(dumps[BackendLegacy])
	switch {
	case nft > legacy:
		return BackendNFT, fmt.Sprintf("auto: iptables-nft has %d rules, iptables-legacy %d", nft, legacy)
	case legacy > nft:
		return BackendLegacy, fmt.Sprintf("auto: iptables-legacy has %d rules, iptables-nft %d", legacy, nft)
	}
	if p, err := exec.LookPath("iptables"); err == nil {
		out, _ := exec.CommandContext(ctx, p, "--version").CombinedOutput()
		for _, b := range []Backend{BackendNFT, BackendLegacy} {
			if bytes.Contains(out, []byte(modeOf[b])) {
				return b, fmt.Sprintf("auto: no rules in either backend (%d each); %s is the system's iptables", nft, b)
			}
		}
	}
	return BackendNFT, fmt.Sprintf("auto: no rules in either backend (%d each) and no system iptables; iptables-nft is the modern default", nft)
}

func countRules(dump []byte) int {
	n := 0
	for _, l := range bytes.Split(dump, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("-A ")) {
			n++
		}
	}
	return n
}
