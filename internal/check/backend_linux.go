//go:build linux

package check

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Dump is one backend's iptables-save output for both families, as read
// by BackendDumps.
type Dump struct {
	Backend string // iptables-legacy or iptables-nft
	Text    []byte
	Err     error // the save command was missing or failed
}

// BackendDumps runs the save commands of both backends (which only read).
func BackendDumps(ctx context.Context) []Dump {
	var out []Dump
	for _, b := range []string{"iptables-legacy", "iptables-nft"} {
		d := Dump{Backend: b}
		flavour := strings.TrimPrefix(b, "iptables-")
		for _, prefix := range []string{"iptables", "ip6tables"} {
			p, err := exec.LookPath(prefix + "-" + flavour + "-save")
			if err != nil {
				if prefix == "iptables" {
					d.Err = err
				}
				continue
			}
			text, err := exec.CommandContext(ctx, p).Output()
			if err != nil && prefix == "iptables" {
				d.Err = fmt.Errorf("%s: %w", p, err)
			}
			d.Text = append(d.Text, text...)
		}
		out = append(out, d)
	}
	return out
}

// Conflicts judges the backends' rules: inUse is the backend meshexp uses
// (or will use); running says whether meshexp's own rules are expected
// there. It fails on PROXY_INIT chains in the other backend (another
// proxy-init or a leftover that would intercept first) or, before the
// first start, in the same one; it warns when both backends hold rules
// (the kernel runs both, in an order that surprises) and on Docker's
// chains (Docker rewrites nat rules when it restarts).
func Conflicts(dumps []Dump, inUse string, running bool) (string, error) {
	var warns []string
	for _, d := range dumps {
		if d.Err != nil {
			continue
		}
		own := bytes.Contains(d.Text, []byte(":PROXY_INIT_"))
		switch {
		case own && d.Backend != inUse:
			return "", fmt.Errorf("%s holds PROXY_INIT chains while meshexp uses %s: another proxy-init's rules or a leftover", d.Backend, inUse)
		case own && !running:
			return "", fmt.Errorf("%s already holds PROXY_INIT chains before meshexp started: another proxy-init's rules or a leftover", d.Backend)
		case !own && running && d.Backend == inUse:
			return "", fmt.Errorf("meshexp is running but %s holds no PROXY_INIT chains: interception is not installed", inUse)
		}
		if bytes.Contains(d.Text, []byte(":DOCKER")) {
			warns = append(warns, d.Backend+" holds Docker's chains (Docker rewrites nat rules when it restarts; restart meshexp after Docker)")
		}
	}
	n := map[string]int{}
	for _, d := range dumps {
		n[d.Backend] = countRules(d.Text)
	}
	if n["iptables-legacy"] > 0 && n["iptables-nft"] > 0 {
		warns = append(warns, fmt.Sprintf("both backends hold rules (iptables-legacy %d, iptables-nft %d); the kernel runs both", n["iptables-legacy"], n["iptables-nft"]))
	}
	detail := fmt.Sprintf("%s in use; iptables-legacy %d rules, iptables-nft %d", inUse, n["iptables-legacy"], n["iptables-nft"])
	if len(warns) > 0 {
		return detail, Warnf("%s", strings.Join(warns, "; "))
	}
	return detail, nil
}

func countRules(dump []byte) int {
	c := 0
	for _, l := range bytes.Split(dump, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("-A ")) {
			c++
		}
	}
	return c
}
