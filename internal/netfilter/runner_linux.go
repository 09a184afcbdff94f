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
	"slices"
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
	input, err := installInput(fr, nat, r.creates(fr.Family))
	if err != nil {
		return err
	}
	return r.restore(ctx, fr.Family, input)
}

// creates lists what installing into f's nat table creates that removing
// must delete again (see CreatedTable): only the nft backend's table and
// base chains can be deleted. When it cannot be told, nothing is recorded,
// so nothing is ever deleted that might have been there before.
func (r *Runner) creates(f Family) []string {
	if r.backend != BackendNFT {
		return nil
	}
	c, err := nftCreates(f)
	if err != nil {
		r.logger.Warn("cannot tell whether the nat table exists; remove will leave it", "family", f, "err", err)
		return nil
	}
	return c
}

// Remove deletes every rule and chain meshexp installed, in every family
// the host has, and nothing else; with the nft backend also the nat table
// and base chains its install created, when no other tool's rule is in
// them, so `nft list ruleset` reads as before. Removing when nothing is
// installed does nothing. With the legacy backend a nat table that did not
// exist before the first install stays, empty (built-in chains with policy
// ACCEPT, no rule): the kernel cannot unregister a legacy table, and it
// changes no packet.
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
	created := CreatedBy(nat)
	dropTable := r.backend == BackendNFT && slices.Contains(created, CreatedTable)
	done, err := r.removeRules(ctx, f, nat, dropTable)
	if err != nil || !done {
		return err
	}
	if dropTable {
		r.dropTable(ctx, f)
	}
	r.logger.Info("interception rules removed", "family", f, "backend", r.backend)
	return nil
}

// removeRules deletes meshexp's rules and chains, and the base chains its
// install created. With keepRecords the records of what install created
// stay, alone in PROXY_INIT_OUTPUT (no jump leads there), for dropTable to
// delete together with the table: a crash in between leaves them for the
// next start. done is false when there was nothing to remove.
func (r *Runner) removeRules(ctx context.Context, f Family, nat *Table, keepRecords bool) (done bool, err error) {
	input, kept := removeInput(nat, keepRecords)
	for _, k := range kept {
		r.logger.Warn("interception chain left in place", "family", f, "why", k)
	}
	if input == nil {
		r.logger.Debug("no interception rules to remove", "family", f)
		return false, nil
	}
	if err := r.restore(ctx, f, input); err != nil {
		if len(CreatedBy(nat)) == 0 {
			return false, err
		}
		// Another tool may have added a rule to a base chain since the
		// dump, or the chain is gone already (meshexp was killed between
		// remove's two steps); the kernel then refuses to delete that
		// chain, and with it the whole transaction. Remove meshexp's rules
		// anyway.
		r.logger.Debug("removal with the base chains refused; removing meshexp's rules only", "family", f, "err", err)
		input, _ = RemoveInput(withoutCreated(nat))
		if err := r.restore(ctx, f, input); err != nil {
			return false, err
		}
	}
	return true, nil
}

// dropTable deletes, in one nf_tables transaction, what is left of
// PROXY_INIT_OUTPUT (the records) and the nat table install created, which
// the kernel does only if nothing else is in the table; otherwise the
// table stays and the records go.
func (r *Runner) dropTable(ctx context.Context, f Family) {
	err := nftDropChainAndEmptyTable(f, ChainOutput)
	switch {
	case err == nil:
		return
	case errors.Is(err, errNotEmpty):
		r.logger.Info("nat table kept: another tool's rules are in it now", "family", f)
	default:
		r.logger.Warn("cannot delete the nat table meshexp created", "family", f, "err", err)
	}
	nat, err := r.dumpNat(ctx, f)
	if err == nil && nat.HasChain(ChainOutput) {
		_, err = r.removeRules(ctx, f, nat, false)
	}
	if err != nil {
		r.logger.Warn("cannot delete the records of what install created", "family", f, "err", err)
	}
}

// withoutCreated is nat without the records of what install created.
func withoutCreated(nat *Table) *Table {
	t := *nat
	t.Rules = slices.DeleteFunc(slices.Clone(nat.Rules), func(r SavedRule) bool { return r.Created() != "" })
	return &t
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
		in, err := installInput(fr, nat, r.creates(fr.Family))
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
