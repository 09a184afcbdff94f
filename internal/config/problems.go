package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with the input: which input, what, and the fix.
type Problem struct {
	Setting string // the setting's name, when the problem is about one
	Input   string // flag, environment variable or file
	Message string
	Fix     string
	Warning bool // reported but does not stop the run
}

// maxMessage bounds a message: values in it are already cut short
// (quote), this is the last guard against an echoed file or value.
const maxMessage = 1024

func (p Problem) String() string {
	msg := p.Message
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + fmt.Sprintf("… (%d bytes in all)", len(p.Message))
	}
	s := p.Input + ": " + msg
	if p.Fix != "" {
		s += " (fix: " + p.Fix + ")"
	}
	return s
}

// Problems is a list of problems found together.
type Problems []Problem

// Errors returns the problems that stop the run.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns the problems that do not stop the run.
func (ps Problems) Warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Err returns an error listing every blocking problem, or nil.
func (ps Problems) Err() error {
	errs := ps.Errors()
	if len(errs) == 0 {
		return nil
	}
	return &InvalidError{Problems: errs}
}

// InvalidError is returned when the configuration has blocking problems.
type InvalidError struct{ Problems Problems }

func (e *InvalidError) Error() string {
	var b strings.Builder
	n := len(e.Problems)
	if n == 1 {
		b.WriteString("invalid configuration: ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "invalid configuration (%d problems):", n)
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}
