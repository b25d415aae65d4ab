package hw

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestDetectCPU(t *testing.T) {
	c := Detect(Options{}).CPU
	t.Logf("%+v", c)
	if c.Threads != runtime.NumCPU() || c.Cores < 1 || c.Cores > c.Threads || c.Model == "" {
		t.Errorf("CPU %+v (NumCPU %d)", c, runtime.NumCPU())
	}
	// Cross-check the instruction sets with the kernel's view.
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || runtime.GOARCH != "amd64" {
		return
	}
	var flags map[string]bool
	for line := range strings.SplitSeq(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = map[string]bool{}
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	if flags == nil {
		t.Fatal("no flags line in /proc/cpuinfo")
	}
	if c.AVX2 != flags["avx2"] {
		t.Errorf("AVX2 %v, /proc/cpuinfo says %v", c.AVX2, flags["avx2"])
	}
	if want := flags["avx512f"] && flags["avx512bw"] && flags["avx512vl"]; c.AVX512 != want {
		t.Errorf("AVX512 %v, /proc/cpuinfo says %v", c.AVX512, want)
	}
	if want := flags["amx_tile"] && flags["amx_bf16"]; c.AMX != want {
		t.Errorf("AMX %v, /proc/cpuinfo says %v", c.AMX, want)
	}
}

// twoSockets is /proc/cpuinfo (trimmed) of 2 sockets × 2 cores × 2 threads:
// CPUs 0-3 on socket 0, 4-7 on socket 1, siblings n and n+2.
const twoSockets = `processor	: 0
model name	: Intel(R) Xeon(R) Test CPU @ 2.00GHz
physical id	: 0
core id		: 0

processor	: 1
physical id	: 0
core id		: 1

processor	: 2
physical id	: 0
core id		: 0

processor	: 3
physical id	: 0
core id		: 1

processor	: 4
physical id	: 1
core id		: 0

processor	: 5
physical id	: 1
core id		: 1

processor	: 6
physical id	: 1
core id		: 0

processor	: 7
physical id	: 1
core id		: 1
`

// arm64 is /proc/cpuinfo of an arm64 machine: no model name, no topology.
const arm64 = `processor	: 0
BogoMIPS	: 50.00
CPU part	: 0xd0c

processor	: 1
BogoMIPS	: 50.00
CPU part	: 0xd0c
`

func TestReadCPUInfo(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	info := readCPUInfo(write("xeon", twoSockets))
	if info.model != "Intel(R) Xeon(R) Test CPU @ 2.00GHz" || len(info.procs) != 8 {
		t.Fatalf("%+v", info)
	}
	for _, tt := range []struct {
		usable map[int]bool
		want   int
	}{
		{nil, 4},
		{map[int]bool{0: true, 2: true}, 1},          // two threads of one core
		{map[int]bool{0: true, 1: true}, 2},          // two cores of socket 0
		{map[int]bool{1: true, 5: true, 7: true}, 2}, // core 1 of each socket
		{map[int]bool{42: true}, 0},                  // none listed
	} {
		if got := info.cores(tt.usable); got != tt.want {
			t.Errorf("cores(%v) = %d, want %d", tt.usable, got, tt.want)
		}
	}
	info = readCPUInfo(write("arm", arm64))
	if info.model != "" || len(info.procs) != 2 || info.cores(nil) != 0 {
		t.Errorf("arm64: %+v, %d cores", info, info.cores(nil))
	}
	if info := readCPUInfo(filepath.Join(dir, "missing")); len(info.procs) != 0 {
		t.Errorf("missing file: %+v", info)
	}
}
