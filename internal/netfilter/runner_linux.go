//go:build linux

package netfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// lockWait is how long iptables-restore waits for the xtables lock another
// iptables run holds (legacy only; nft ignores it).
const lockWait = "--wait=10"

// tools are one family's save and restore commands.
type tools struct{ save, restore string }

// Runner applies plans to the current network namespace with one backend.
type Runner struct {
	backend Backend
	reason  string
	tools   map[Family]tools
	ipv6    error // why the host cannot take IPv6 rules, or nil
	logger  *slog.Logger
}

// NewRunner finds the backend's commands; BackendAuto picks the backend the
// host already uses (see Detect). It changes nothing.
func NewRunner(ctx context.Context, backend Backend, logger *slog.Logger) (*Runner, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Runner{backend: backend, logger: logger}
	switch backend {
	case BackendAuto:
		r.backend, r.reason = Detect(ctx, logger)
	case BackendLegacy, BackendNFT:
		r.reason = "chosen by setting"
	default:
		return nil, fmt.Errorf("netfilter: unknown backend %q; use auto, iptables-legacy or iptables-nft", backend)
	}
	r.tools = map[Family]tools{}
	for _, f := range []Family{IPv4, IPv6} {
		t, err := findTools(ctx, r.backend, f)
		if err != nil {
			if f == IPv4 {
				return nil, err
			}
			r.ipv6 = err
			continue
		}
		r.tools[f] = t
	}
	if r.ipv6 == nil {
		r.ipv6 = hostIPv6()
	}
	logger.Debug("netfilter backend", "backend", r.backend, "why", r.reason, "ipv6", errString(r.ipv6))
	return r, nil
}

// Backend is the backend in use and why it was chosen.
func (r *Runner) Backend() (Backend, string) { return r.backend, r.reason }

// families returns the families of rs this host takes, with the reason a
// planned family is skipped.
func (r *Runner) families(rs *Ruleset) (use []*FamilyRules, skipped map[Family]string, err error) {
	skipped = map[Family]string{}
	for i := range rs.Families {
		fr := &rs.Families[i]
		if fr.Family == IPv6 && r.ipv6 != nil {
			if !rs.IPv6Auto {
				return nil, nil, fmt.Errorf("netfilter: IPv6 interception is on but %v; set intercept-ipv6 to auto or off", r.ipv6)
			}
			skipped[IPv6] = r.ipv6.Error()
			continue
		}
		use = append(use, fr)
	}
	return use, skipped, nil
}

// Install makes the nat table hold exactly rs: one iptables-restore
// transaction per family. If a later family fails, the earlier ones are
// removed again, so a failed install leaves no rule behind.
func (r *Runner) Install(ctx context.Context, rs *Ruleset) error {
	frs, skipped, err := r.families(rs)
	if err != nil {
		return err
	}
	for f, why := range skipped {
		r.logger.Info("interception rules skipped", "family", f, "why", why)
	}
	var done []Family
	for _, fr := range frs {
		if err := r.installFamily(ctx, fr); err != nil {
			for _, f := range done {
				if rerr := r.removeFamily(context.WithoutCancel(ctx), f); rerr != nil {
					err = errors.Join(err, fmt.Errorf("netfilter: roll back %s rules: %w", f, rerr))
				}
			}
			return err
		}
		done = append(done, fr.Family)
		r.logger.Info("interception rules installed", "family", fr.Family, "backend", r.backend, "rules", len(fr.Rules)+len(fr.Jumps))
	}
	return nil
}

func (r *Runner) installFamily(ctx context.Context, fr *FamilyRules) error {
	nat, err := r.dumpNat(ctx, fr.Family)
	if err != nil {
		return err
	}
	input, err := InstallInput(fr, nat)
	if err != nil {
		return err
	}
	return r.restore(ctx, fr.Family, input)
}

// Remove deletes every rule and chain meshexp installed, in every family
// the host has, and nothing else. Removing when nothing is installed does
// nothing. A nat table that did not exist before the first install stays,
// empty (built-in chains with policy ACCEPT, no rule): the legacy kernel
// cannot unregister a table, and it changes no packet.
func (r *Runner) Remove(ctx context.Context) error {
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		if _, ok := r.tools[f]; !ok {
			continue
		}
		err := r.removeFamily(ctx, f)
		if err != nil && f == IPv6 && r.ipv6 != nil {
			// IPv6 rules may predate disabling IPv6, so they are looked
			// for anyway; a kernel without IPv6 has none to find.
			r.logger.Debug("no IPv6 rules to remove", "why", r.ipv6, "err", err)
			continue
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Runner) removeFamily(ctx context.Context, f Family) error {
	nat, err := r.dumpNat(ctx, f)
	if err != nil {
		return err
	}
	input, kept := RemoveInput(nat)
	for _, k := range kept {
		r.logger.Warn("interception chain left in place", "family", f, "why", k)
	}
	if input == nil {
		r.logger.Debug("no interception rules to remove", "family", f)
		return nil
	}
	if err := r.restore(ctx, f, input); err != nil {
		return err
	}
	r.logger.Info("interception rules removed", "family", f, "backend", r.backend)
	return nil
}

// Show compares what is installed with rs, per family.
func (r *Runner) Show(ctx context.Context, rs *Ruleset) ([]Status, error) {
	frs, skipped, err := r.families(rs)
	if err != nil {
		return nil, err
	}
	var out []Status
	for _, fr := range frs {
		nat, err := r.dumpNat(ctx, fr.Family)
		if err != nil {
			return nil, err
		}
		st := Compare(fr, nat)
		st.Command = r.tools[fr.Family].save
		out = append(out, st)
	}
	for f, why := range skipped {
		out = append(out, Status{Family: f, Skipped: why})
	}
	return out, nil
}

// InstallInputs renders, without changing anything, what Install would
// feed iptables-restore now (it reads the current rules to find stale
// ones).
func (r *Runner) InstallInputs(ctx context.Context, rs *Ruleset) ([]Input, error) {
	frs, _, err := r.families(rs)
	if err != nil {
		return nil, err
	}
	var out []Input
	for _, fr := range frs {
		nat, err := r.dumpNat(ctx, fr.Family)
		if err != nil {
			return nil, err
		}
		in, err := InstallInput(fr, nat)
		if err != nil {
			return nil, err
		}
		out = append(out, Input{fr.Family, r.tools[fr.Family].restore + " --noflush " + lockWait, in})
	}
	return out, nil
}

// dumpNat reads the family's nat table, or nil when it does not exist. It
// dumps every table rather than asking for nat: with the legacy backend,
// naming a table creates it, and a read must not change the namespace.
func (r *Runner) dumpNat(ctx context.Context, f Family) (*Table, error) {
	out, err := r.run(ctx, r.tools[f].save, nil)
	if err != nil {
		return nil, err
	}
	tables, err := ParseSave(out)
	if err != nil {
		return nil, err
	}
	return tables["nat"], nil
}

var failedLine = regexp.MustCompile(`line (\d+) failed`)

func (r *Runner) restore(ctx context.Context, f Family, input []byte) error {
	r.logger.Debug("iptables-restore input", "family", f, "input", string(input))
	_, err := r.run(ctx, r.tools[f].restore, input, "--noflush", lockWait)
	if err != nil {
		// Name the line iptables-restore refused; its message gives only
		// the number.
		if m := failedLine.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			if lines := strings.Split(string(input), "\n"); n >= 1 && n <= len(lines) {
				err = fmt.Errorf("%w (line %d: %s)", err, n, lines[n-1])
			}
		}
		return fmt.Errorf("netfilter: apply %s rules: %w", f, err)
	}
	return nil
}

// run runs a command, feeding it stdin; it dies with meshexp (Pdeathsig),
// so a killed meshexp never leaves a half-fed iptables-restore behind,
// and iptables-restore commits nothing it has not read to COMMIT.
func (r *Runner) run(ctx context.Context, name string, stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r.logger.Debug("run", "cmd", cmd.String())
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmd.String(), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// HostIPv6 returns why this network namespace cannot use IPv6, or nil:
// what IPv6 "auto" decides by.
func HostIPv6() error { return hostIPv6() }

// hostIPv6 returns why the host cannot use IPv6, or nil.
func hostIPv6() error {
	// thread-self: /proc/net follows the main thread's namespace, which
	// need not be the one this thread works in.
	if _, err := os.Stat("/proc/thread-self/net/if_inet6"); err != nil {
		return errors.New("the kernel has no IPv6 (/proc/net/if_inet6 is missing)")
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) == "1" {
		return errors.New("IPv6 is disabled (net.ipv6.conf.all.disable_ipv6=1)")
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "available"
	}
	return err.Error()
}
