//go:build linux

package supervise

import "testing"

func TestProcStatIsParsedAfterTheLastParenthesis(t *testing.T) {
	st, err := parseProcStat("42 (a) b (c) Z 7 42 42 0 -1 4194560")
	if err != nil {
		t.Fatal(err)
	}
	if st != (procStat{state: 'Z', ppid: 7, pgrp: 42}) {
		t.Errorf("parsed %+v, want state Z, ppid 7, pgrp 42", st)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S", "42 (x) S a 1"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) succeeded, want an error", bad)
		}
	}
}

func TestOnlyPidfdsHaveAPidInTheirFdinfo(t *testing.T) {
	tests := []struct {
		name   string
		fdinfo string
		pid    int
		ok     bool
	}{
		{"a pidfd", "pos:\t0\nflags:\t02000002\nmnt_id:\t4\nino:\t51112\nPid:\t18657\nNSpid:\t18657\n", 18657, true},
		{"a reaped pidfd", "pos:\t0\nPid:\t-1\nNSpid:\t-1\n", -1, false},
		{"a plain file", "pos:\t0\nflags:\t02100000\nmnt_id:\t25\nino:\t1234\n", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pid, ok := fdinfoPid([]byte(tt.fdinfo))
			if ok != tt.ok || (ok && pid != tt.pid) {
				t.Errorf("fdinfoPid = %d, %v; want %d, %v", pid, ok, tt.pid, tt.ok)
			}
		})
	}
}

func TestPidfdsWorkOnThisKernel(t *testing.T) {
	if !pidfdWorks() {
		t.Skip("this kernel has no usable pidfds (Linux < 5.4): the reaper falls back to reaping zombies left unreaped for a while")
	}
}
