package check

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func ok(context.Context) (string, error)   { return "fine", nil }
func bad(context.Context) (string, error)  { return "", errors.New("broken") }
func warn(context.Context) (string, error) { return "", Warnf("not great") }

func TestChecksRunInOrderAndOnlyFailuresFailTheRun(t *testing.T) {
	checks := []Check{
		{Category: Host, Description: "a", Run: ok},
		{Category: Host, Description: "b", Run: warn, Hint: "do b"},
		{Category: Host, Description: "c", Run: bad, Warning: true, Hint: "do c"},
		{Category: Identity, Description: "d", Run: func(context.Context) (string, error) { return "", Skipf("not here") }},
	}
	var seen []string
	results, failed := Run(context.Background(), checks, func(r Result) { seen = append(seen, r.Description+"="+string(r.Status)) })
	if failed {
		t.Error("warnings and skips failed the run")
	}
	if got, want := strings.Join(seen, " "), "a=ok b=warning c=warning d=skipped"; got != want {
		t.Errorf("streamed %q, want %q", got, want)
	}
	if results[1].Hint != "do b" || results[0].Hint != "" {
		t.Errorf("hints: %+v", results)
	}
}

func TestAFailedCheckSkipsTheChecksThatNeedIt(t *testing.T) {
	checks := []Check{
		{Category: Cluster, Description: "resolves", Run: bad},
		{Category: Cluster, Description: "reachable", Needs: "resolves", Run: ok},
		{Category: Cluster, Description: "stopper", Stop: true, Run: bad},
		{Category: Cluster, Description: "after", Run: ok},
		{Category: Host, Description: "other category", Run: ok},
	}
	results, failed := Run(context.Background(), checks, nil)
	if !failed {
		t.Error("the run did not fail")
	}
	want := []Status{Fail, Skip, Fail, Skip, OK}
	for i, r := range results {
		if r.Status != want[i] {
			t.Errorf("%s: %s, want %s", r.Description, r.Status, want[i])
		}
	}
}

func TestTheTextReportShowsSymbolsErrorsAndHints(t *testing.T) {
	var b bytes.Buffer
	results, failed := Run(context.Background(), []Check{
		{Category: Host, Description: "good", Run: ok},
		{Category: Identity, Description: "broken", Run: bad, Hint: "fix it"},
	}, TextPrinter(&b))
	Summary(&b, results, failed)
	want := "host\n----\n✓ good (fine)\n\nidentity\n----\n× broken\n    broken\n    hint: fix it\n\nStatus check results are ×\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestTheJSONReportCarriesEveryResult(t *testing.T) {
	results, failed := Run(context.Background(), []Check{{Category: Host, Description: "w", Run: warn, Hint: "h"}}, nil)
	var b bytes.Buffer
	if err := WriteJSON(&b, results, failed); err != nil {
		t.Fatal(err)
	}
	var got JSONReport
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Success || len(got.Results) != 1 || got.Results[0].Status != Warn || got.Results[0].Error != "not great" || got.Results[0].Hint != "h" {
		t.Errorf("got %+v", got)
	}
}

func TestVersionsAreComparedNumerically(t *testing.T) {
	for _, tc := range []struct {
		a, b  string
		newer bool
	}{{"2.329.0", "2.325.0", true}, {"2.325.0", "2.325.0", false}, {"2.99.0", "2.325.0", false}, {"v3.0.0", "2.325.0", true}} {
		if got := Newer(tc.a, tc.b); got != tc.newer {
			t.Errorf("Newer(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestAProxyAfter2325WarnsOfTheKnownSPIREIncompatibility(t *testing.T) {
	v := func(s string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { return s, nil }
	}
	if _, err := Versions(v("2.325.0"), v("1.13.3"))(context.Background()); err != nil {
		t.Errorf("2.325.0 with 1.13.3: %v", err)
	}
	_, err := Versions(v("2.329.0"), v("1.13.3"))(context.Background())
	var w *warnError
	if !errors.As(err, &w) || !strings.Contains(err.Error(), "linkerd/linkerd2#14730") {
		t.Errorf("2.329.0: want a warning naming #14730, got %v", err)
	}
}
