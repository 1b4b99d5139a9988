package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	line := "4242 (post gres) (x)) S 17 4242 4242 0 -1 4194560 1 0 0 0 250 75 30 12 20 0 1 0 100 1000 10 " +
		"18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, PPID: 17, Comm: "post gres) (x)", User: 2500 * time.Millisecond,
		System: 750 * time.Millisecond, ChildUser: 300 * time.Millisecond, ChildSystem: 120 * time.Millisecond}
	if s != want {
		t.Fatalf("Parse = %+v, want %+v", s, want)
	}
	if s.CPU() != 3250*time.Millisecond {
		t.Errorf("CPU = %v", s.CPU())
	}
	for _, bad := range []string{"", "12 no-parens S 1", "12 (x) S 1 2 3"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
}

func TestGroupCPU(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	stats := []Stat{
		{PID: 1, PPID: 0, Comm: "systemd", User: ms(999), ChildUser: ms(999)},
		{PID: 10, PPID: 1, Comm: "postgres", User: ms(100), System: ms(10), ChildUser: ms(500), ChildSystem: ms(50)},
		{PID: 11, PPID: 10, Comm: "postgres", User: ms(200), System: ms(20), ChildUser: ms(7)}, // a backend's children are not the cluster's reaped backends
		{PID: 12, PPID: 10, Comm: "postgres", User: ms(300)},
		{PID: 20, PPID: 1, Comm: "relay", User: ms(1000)},
	}
	if got, want := GroupCPU(stats, "postgres"), ms(100+10+500+50+200+20+300); got != want {
		t.Errorf("GroupCPU = %v, want %v", got, want)
	}
}

func TestReadSelf(t *testing.T) {
	s, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.PID != os.Getpid() || s.Comm == "" {
		t.Fatalf("Read(self) = %+v", s)
	}
}
