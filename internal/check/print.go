package check

import (
	"encoding/json"
	"fmt"
	"io"
)

// Symbol is the mark shown for a status.
func Symbol(s Status) string {
	switch s {
	case OK:
		return "✓"
	case Warn:
		return "‼"
	case Fail:
		return "×"
	default:
		return "-"
	}
}

// TextPrinter returns a report function that prints each result as it
// arrives, under a heading per category, as `linkerd check` does.
func TextPrinter(w io.Writer) func(Result) {
	last := ""
	return func(r Result) {
		if r.Category != last {
			if last != "" {
				fmt.Fprintln(w)
			}
			fmt.Fprintln(w, r.Category)
			fmt.Fprintln(w, "----")
			last = r.Category
		}
		line := Symbol(r.Status) + " " + r.Description
		if r.Detail != "" {
			line += " (" + r.Detail + ")"
		}
		fmt.Fprintln(w, line)
		if r.Error != "" {
			fmt.Fprintln(w, "    "+r.Error)
		}
		if r.Hint != "" {
			fmt.Fprintln(w, "    hint: "+r.Hint)
		}
	}
}

// Summary prints the closing line.
func Summary(w io.Writer, results []Result, failed bool) {
	warns := 0
	for _, r := range results {
		if r.Status == Warn {
			warns++
		}
	}
	fmt.Fprintln(w)
	switch {
	case failed:
		fmt.Fprintln(w, "Status check results are ×")
	case warns > 0:
		fmt.Fprintln(w, "Status check results are ✓ with", warns, "warning(s)")
	default:
		fmt.Fprintln(w, "Status check results are ✓")
	}
}

// JSONReport is the --output json form.
type JSONReport struct {
	Success bool     `json:"success"`
	Results []Result `json:"results"`
}

// WriteJSON writes the results as one JSON document.
func WriteJSON(w io.Writer, results []Result, failed bool) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if results == nil {
		results = []Result{}
	}
	return enc.Encode(JSONReport{Success: !failed, Results: results})
}
