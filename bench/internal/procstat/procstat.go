// Package procstat reads the CPU time processes used from /proc (Linux):
// utime+stime of one process, and of every PostgreSQL process, including
// the backends that already exited (counted in the postmaster's
// cutime+cstime once it reaped them).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is USER_HZ: the unit of /proc/<pid>/stat times. It is 100 on
// every Linux architecture Go supports.
const clockTick = 100

// Stat is the part of /proc/<pid>/stat this package reads.
type Stat struct {
	PID, PPID int
	// Comm is the executable name (at most 15 bytes).
	Comm string
	// User, System are the CPU time of the process itself.
	User, System time.Duration
	// ChildUser, ChildSystem are the CPU time of its children it waited for.
	ChildUser, ChildSystem time.Duration
}

// CPU is User+System.
func (s Stat) CPU() time.Duration { return s.User + s.System }

// Parse parses the content of /proc/<pid>/stat. The command name may hold
// spaces and parentheses, so fields are counted from its last ')'.
func Parse(b []byte) (Stat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("procstat: no command name in %q", b)
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return Stat{}, fmt.Errorf("procstat: pid: %w", err)
	}
	// After ") ": field 3 (state) is index 0; ppid (4) is 1; utime (14) is
	// 11, stime 12, cutime 13, cstime 14.
	f := bytes.Fields(b[end+1:])
	if len(f) < 15 {
		return Stat{}, fmt.Errorf("procstat: %d fields after the command name, want at least 15", len(f))
	}
	num := func(i int) (int64, error) { return strconv.ParseInt(string(f[i]), 10, 64) }
	var v [5]int64
	for k, i := range []int{1, 11, 12, 13, 14} {
		if v[k], err = num(i); err != nil {
			return Stat{}, fmt.Errorf("procstat: field %d: %w", i+3, err)
		}
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * time.Second / clockTick }
	return Stat{PID: pid, PPID: int(v[0]), Comm: string(b[open+1 : end]),
		User: tick(v[1]), System: tick(v[2]), ChildUser: tick(v[3]), ChildSystem: tick(v[4])}, nil
}

// Read reads the stat of pid.
func Read(pid int) (Stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return Stat{}, err
	}
	return Parse(b)
}

// ProcessCPU is the CPU time pid used so far, 0 when it is gone.
func ProcessCPU(pid int) time.Duration {
	s, err := Read(pid)
	if err != nil {
		return 0
	}
	return s.CPU()
}

// All reads the stat of every process.
func All() []Stat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []Stat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := Read(pid); err == nil {
			out = append(out, s)
		}
	}
	return out
}

// GroupCPU sums the CPU time of the processes named comm, plus what the
// root ones (whose parent is not named comm: the postmaster) reaped from
// their exited children. For PostgreSQL (comm "postgres") that is the
// whole cluster, backends that came and went included.
func GroupCPU(stats []Stat, comm string) time.Duration {
	named := map[int]bool{}
	for _, s := range stats {
		if s.Comm == comm {
			named[s.PID] = true
		}
	}
	var sum time.Duration
	for _, s := range stats {
		if !named[s.PID] {
			continue
		}
		sum += s.CPU()
		if !named[s.PPID] {
			sum += s.ChildUser + s.ChildSystem
		}
	}
	return sum
}
