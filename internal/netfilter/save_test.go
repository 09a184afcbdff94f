package netfilter

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/meshexp/meshexp/internal/testutil/golden"
)

func readDump(t *testing.T, name string) map[string]*Table {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := ParseSave(data)
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

func TestParseSave(t *testing.T) {
	tables := readDump(t, "leftover.save")
	nat := tables["nat"]
	if nat == nil || tables["filter"] == nil {
		t.Fatalf("tables = %v, want filter and nat", tables)
	}
	if !nat.HasChain(ChainOutput) || !nat.HasChain("DOCKER") || nat.HasChain("KUBE-SERVICES") {
		t.Errorf("chains = %v", nat.Chains)
	}
	quoted := nat.Rules[4]
	if got := quoted.Comment(); got != `a "quoted" foreign comment -j PROXY_INIT_OUTPUT` {
		t.Errorf("comment = %q", got)
	}
	if quoted.Target() != "RETURN" || quoted.Ours() {
		t.Errorf("a comment that mentions a chain must not make the rule jump there: target %q, ours %v", quoted.Target(), quoted.Ours())
	}
	if !nat.Rules[0].Ours() || nat.Rules[0].Target() != ChainRedirect {
		t.Errorf("rule 0 = %+v, want meshexp's jump", nat.Rules[0])
	}
}

func TestParseSaveRejectsGarbage(t *testing.T) {
	for _, in := range []string{"-A OUTPUT -j RETURN\n", "*nat\nbogus line\nCOMMIT\n", "*nat\n-A OUTPUT -m comment --comment \"open\nCOMMIT\n"} {
		if _, err := ParseSave([]byte(in)); err == nil {
			t.Errorf("ParseSave(%q) succeeded", in)
		}
	}
}

func TestInstallOverLeftoversReplacesThemAndKeepsForeignRules(t *testing.T) {
	rs, err := Plan(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	nat := readDump(t, "leftover.save")["nat"]
	in, err := InstallInput(rs.Family(IPv4), nat)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "leftover.restore", in)
	for _, foreign := range []string{"DOCKER", "203.0.113.5", "MASQUERADE"} {
		if strings.Contains(string(in), foreign) {
			t.Errorf("install input touches the foreign rule with %s:\n%s", foreign, in)
		}
	}
}

func TestRemoveDeletesOnlyMeshexpRules(t *testing.T) {
	in, kept := RemoveInput(readDump(t, "leftover.save")["nat"])
	if len(kept) > 0 {
		t.Errorf("kept = %v, want nothing kept", kept)
	}
	golden.Check(t, "leftover-remove.restore", in)
	if in, _ := RemoveInput(nil); in != nil {
		t.Errorf("removing from an absent table renders %q, want nothing", in)
	}
}

func TestInstallRefusesChainsAnotherToolOwns(t *testing.T) {
	demo := `*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:PROXY_INIT_OUTPUT - [0:0]
-A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output/1700000000" -j PROXY_INIT_OUTPUT
-A PROXY_INIT_OUTPUT -m owner --uid-owner 0 -m comment --comment "proxy-init/ignore-proxy-user-id/1700000000" -j RETURN
COMMIT
`
	tables, err := ParseSave([]byte(demo))
	if err != nil {
		t.Fatal(err)
	}
	rs, _ := Plan(DefaultOptions())
	_, err = InstallInput(rs.Family(IPv4), tables["nat"])
	var fe *ForeignRulesError
	if !errors.As(err, &fe) || len(fe.Rules) != 2 {
		t.Fatalf("InstallInput over the demo's rules = %v, want a ForeignRulesError naming both", err)
	}
	if !strings.Contains(err.Error(), "uid-owner 0") || !strings.Contains(err.Error(), "iptables -t nat -F") {
		t.Errorf("error does not name the rule and the fix: %v", err)
	}

	in, kept := RemoveInput(tables["nat"])
	if in != nil || len(kept) != 2 {
		t.Errorf("RemoveInput over the demo's rules = %q, kept %v; want nothing removed and both reasons", in, kept)
	}
}

func TestCompare(t *testing.T) {
	rs, _ := Plan(DefaultOptions())
	fr := rs.Family(IPv4)
	installed := func(lines ...string) *Table {
		t.Helper()
		tables, err := ParseSave([]byte("*nat\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"))
		if err != nil {
			t.Fatal(err)
		}
		return tables["nat"]
	}
	var exact []string
	for _, r := range append(slices.Clone(fr.Jumps), fr.Rules...) {
		exact = append(exact, r.String())
	}
	t.Run("exactly the plan matches", func(t *testing.T) {
		if st := Compare(fr, installed(exact...)); !st.Matches || len(st.Installed) != len(exact) {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("nothing installed does not match and lists every rule as missing", func(t *testing.T) {
		if st := Compare(fr, nil); st.Matches || len(st.Missing) != len(exact) {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("a second jump is unexpected", func(t *testing.T) {
		st := Compare(fr, installed(append(exact, exact[0])...))
		if st.Matches || len(st.Unexpected) != 1 {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("the same rules in another order do not match", func(t *testing.T) {
		swapped := slices.Clone(exact)
		n := len(swapped)
		swapped[n-1], swapped[n-2] = swapped[n-2], swapped[n-1]
		if st := Compare(fr, installed(swapped...)); st.Matches || len(st.Missing) != 0 {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("quoting differences do not matter", func(t *testing.T) {
		unquoted := slices.Clone(exact)
		for i := range unquoted {
			unquoted[i] = strings.ReplaceAll(unquoted[i], `"`, "")
		}
		if st := Compare(fr, installed(unquoted...)); !st.Matches {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("foreign rules elsewhere are not reported", func(t *testing.T) {
		if st := Compare(fr, installed(append(exact, "-A OUTPUT -d 203.0.113.5/32 -j RETURN")...)); !st.Matches {
			t.Fatalf("%+v", st)
		}
	})
}

func TestWhatInstallCreatedIsRecordedAndRemoved(t *testing.T) {
	rs, err := Plan(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	fr := rs.Family(IPv4)
	in, err := installInput(fr, nil, []string{CreatedTable, CreatedPrerouting, CreatedOutput})
	if err != nil {
		t.Fatal(err)
	}
	// What iptables-save prints once the input is applied.
	var dump strings.Builder
	dump.WriteString("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, l := range strings.Split(string(in), "\n") {
		if strings.HasPrefix(l, "-A ") {
			dump.WriteString(l + "\n")
		}
	}
	for _, j := range fr.Jumps {
		if !j.Last {
			dump.WriteString(j.String() + "\n")
		}
	}
	for _, tc := range []struct {
		name    string
		foreign string
		want    []string
		notWant []string
	}{
		{"with nothing else in the table the base chains install created go too", "", []string{"-X PREROUTING", "-X OUTPUT"}, nil},
		{"a base chain holding another tool's rule stays", "-A PREROUTING -p udp -j RETURN\n", []string{"-X OUTPUT"}, []string{"-X PREROUTING"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, err := ParseSave([]byte(dump.String() + tc.foreign + "COMMIT\n"))
			if err != nil {
				t.Fatal(err)
			}
			nat := tables["nat"]
			if got := CreatedBy(nat); !slices.Equal(got, []string{CreatedTable, CreatedPrerouting, CreatedOutput}) {
				t.Fatalf("records read back = %q", got)
			}
			if st := Compare(fr, nat); !st.Matches {
				t.Errorf("the records make show differ from the plan: missing %q, unexpected %q", st.Missing, st.Unexpected)
			}
			again, err := installInput(fr, nat, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(again), createdPrefix); n != 3 {
				t.Errorf("a second install keeps %d records, want the 3 of the first:\n%s", n, again)
			}
			rm, _ := RemoveInput(nat)
			for _, l := range tc.want {
				if !strings.Contains(string(rm), l+"\n") {
					t.Errorf("remove input lacks %q:\n%s", l, rm)
				}
			}
			for _, l := range tc.notWant {
				if strings.Contains(string(rm), l+"\n") {
					t.Errorf("remove input holds %q:\n%s", l, rm)
				}
			}
		})
	}
}
