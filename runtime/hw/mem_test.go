package hw

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

const gib = 1 << 30

// meminfo says 16 GiB of RAM, 12 GiB available.
const meminfo = `MemTotal:       16777216 kB
MemFree:         1048576 kB
MemAvailable:   12582912 kB
Buffers:          102400 kB
`

// writeTree creates the files (path → content) under a fresh directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func n(v int64) string { return strconv.FormatInt(v, 10) + "\n" }

func TestDetectMemory(t *testing.T) {
	const v1Unset = "9223372036854771712\n" // a v1 cgroup without a limit
	tests := []struct {
		name       string
		selfCgroup string // "": no /proc/self/cgroup
		cgroup     map[string]string
		want       Memory
	}{
		{"no cgroup", "", nil, Memory{Total: 16 * gib, Available: 12 * gib}},
		{"v1 limit",
			"12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
			map[string]string{
				"memory/docker/abc/memory.limit_in_bytes": n(4 * gib),
				"memory/docker/abc/memory.usage_in_bytes": n(1 * gib),
				"memory/memory.limit_in_bytes":            v1Unset,
				"memory/memory.usage_in_bytes":            n(10 * gib),
			},
			Memory{Total: 4 * gib, Available: 3 * gib, CgroupLimit: 4 * gib, CgroupUsage: 1 * gib}},
		{"v1 no limit",
			"4:memory:/user.slice\n",
			map[string]string{
				"memory/user.slice/memory.limit_in_bytes": v1Unset,
				"memory/user.slice/memory.usage_in_bytes": n(2 * gib),
			},
			Memory{Total: 16 * gib, Available: 12 * gib, CgroupUsage: 2 * gib}},
		{"v1 inactive file cache is not usage",
			"4:memory:/job\n",
			map[string]string{
				"memory/job/memory.limit_in_bytes": n(8 * gib),
				"memory/job/memory.usage_in_bytes": n(7 * gib),
				"memory/job/memory.stat":           "cache 6442450944\ninactive_file 1\ntotal_inactive_file 5368709120\n",
			},
			Memory{Total: 8 * gib, Available: 6 * gib, CgroupLimit: 8 * gib, CgroupUsage: 2 * gib}},
		{"v1 container sees only its own cgroup",
			"4:memory:/docker/abc\n",
			map[string]string{
				"memory/memory.limit_in_bytes": n(2 * gib),
				"memory/memory.usage_in_bytes": n(gib / 2),
			},
			Memory{Total: 2 * gib, Available: 3 * gib / 2, CgroupLimit: 2 * gib, CgroupUsage: gib / 2}},
		{"v2 limit",
			"0::/system.slice/gptoss.service\n",
			map[string]string{
				"cgroup.controllers":                         "cpu memory pids\n",
				"system.slice/gptoss.service/memory.max":     n(8 * gib),
				"system.slice/gptoss.service/memory.current": n(7 * gib),
				"system.slice/gptoss.service/memory.stat":    "anon 7516192768\nfile 0\ninactive_file 0\n",
				"system.slice/memory.max":                    "max\n",
				"system.slice/memory.current":                n(9 * gib),
			},
			Memory{Total: 8 * gib, Available: 1 * gib, CgroupLimit: 8 * gib, CgroupUsage: 7 * gib}},
		{"v2 max",
			"0::/user.slice/session.scope\n",
			map[string]string{
				"user.slice/session.scope/memory.max":     "max\n",
				"user.slice/session.scope/memory.current": n(3 * gib),
				"user.slice/memory.max":                   "max\n",
			},
			Memory{Total: 16 * gib, Available: 12 * gib, CgroupUsage: 3 * gib}},
		{"v2 ancestor limit is tighter",
			"0::/kubepods/pod1/ctr\n",
			map[string]string{
				"kubepods/pod1/ctr/memory.max":     "max\n",
				"kubepods/pod1/ctr/memory.current": n(gib),
				"kubepods/pod1/memory.max":         n(2 * gib),
				"kubepods/pod1/memory.current":     n(3 * gib / 2),
				"kubepods/memory.max":              n(64 * gib),
				"kubepods/memory.current":          n(40 * gib),
			},
			Memory{Total: 2 * gib, Available: gib / 2, CgroupLimit: 2 * gib, CgroupUsage: gib}},
		{"v2 limit above RAM",
			"0::/big\n",
			map[string]string{
				"big/memory.max":     n(32 * gib),
				"big/memory.current": n(gib),
			},
			Memory{Total: 16 * gib, Available: 12 * gib, CgroupLimit: 32 * gib, CgroupUsage: gib}},
		{"v2 over its limit",
			"0::/tight\n",
			map[string]string{
				"tight/memory.max":     n(gib),
				"tight/memory.current": n(2 * gib),
			},
			Memory{Total: gib, Available: 0, CgroupLimit: gib, CgroupUsage: 2 * gib}},
		{"v1 memory controller wins in hybrid mode",
			"4:memory:/a\n0::/a\n",
			map[string]string{
				"memory/a/memory.limit_in_bytes": n(6 * gib),
				"memory/a/memory.usage_in_bytes": n(gib),
				"a/memory.max":                   n(gib), // not a v2 memory controller in hybrid mode
			},
			Memory{Total: 6 * gib, Available: 5 * gib, CgroupLimit: 6 * gib, CgroupUsage: gib}},
		{"v2 path escaping the mount is ignored",
			"0::/../../etc\n",
			map[string]string{"memory.max": n(4 * gib), "memory.current": n(gib)},
			Memory{Total: 4 * gib, Available: 3 * gib, CgroupLimit: 4 * gib, CgroupUsage: gib}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := map[string]string{"meminfo": meminfo}
			if tt.selfCgroup != "" {
				proc["self/cgroup"] = tt.selfCgroup
			}
			procRoot := writeTree(t, proc)
			cgroupRoot := writeTree(t, tt.cgroup)
			if got := detectMemory(procRoot, cgroupRoot); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadMeminfoOldKernel(t *testing.T) {
	root := writeTree(t, map[string]string{"meminfo": "MemTotal: 2048 kB\nMemFree: 1024 kB\n"})
	if total, avail := readMeminfo(filepath.Join(root, "meminfo")); total != 2<<20 || avail != 1<<20 {
		t.Errorf("%d %d", total, avail)
	}
}

func TestDetectMemoryHere(t *testing.T) {
	m := Detect(Options{}).Memory
	t.Logf("%+v", m)
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip("no /proc/meminfo")
	}
	if m.Total <= 0 || m.Available <= 0 || m.Available > m.Total {
		t.Errorf("%+v", m)
	}
}
