package hw

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cgroupV1Unlimited: a cgroup v1 limit at or above this is "no limit" (the
// kernel reports an unset limit as the largest page-aligned int64).
const cgroupV1Unlimited = 1 << 62

// detectMemory reads procRoot/meminfo and bounds it by the memory cgroup
// of this process (found through procRoot/self/cgroup under cgroupRoot):
// Total = min(MemTotal, limit), Available = min(MemAvailable, limit −
// usage), where usage leaves out the cgroup's inactive file cache (memory
// the kernel reclaims before it would OOM-kill, as MemAvailable counts it).
// Limits of ancestor cgroups apply too: the tightest one wins.
func detectMemory(procRoot, cgroupRoot string) Memory {
	var mem Memory
	mem.Total, mem.Available = readMeminfo(filepath.Join(procRoot, "meminfo"))
	cg := readCgroupMemory(filepath.Join(procRoot, "self", "cgroup"), cgroupRoot)
	if cg.usage > 0 {
		mem.CgroupUsage = cg.usage
	}
	if cg.limit < 0 {
		return mem
	}
	mem.CgroupLimit = cg.limit
	mem.Total = minKnown(mem.Total, cg.limit)
	mem.Available = minKnown(mem.Available, cg.headroom)
	return mem
}

// minKnown is the smaller of a and b, where a value ≤ 0 is unknown.
func minKnown(a, b int64) int64 {
	if a <= 0 || (b >= 0 && b < a) {
		return max(b, 0)
	}
	return a
}

// readMeminfo returns MemTotal and MemAvailable (MemFree on kernels before
// 3.14) in bytes; 0 where the file does not say.
func readMeminfo(path string) (total, available int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	var free int64
	haveAvailable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		switch key {
		case "MemTotal":
			total = n
		case "MemAvailable":
			available, haveAvailable = n, true
		case "MemFree":
			free = n
		}
	}
	if !haveAvailable {
		available = free
	}
	return total, available
}

// cgroupMemory is what the memory cgroup says; -1 where it says nothing.
type cgroupMemory struct {
	limit    int64 // the tightest limit of the cgroup and its ancestors
	usage    int64 // the process's cgroup's usage, less inactive file cache
	headroom int64 // the least limit − usage among the limited levels
}

// cgroupLayout is where one cgroup version keeps the memory files.
type cgroupLayout struct {
	limitFile, usageFile, inactiveKey string
	unlimited                         func(string) bool
}

var (
	cgroupV1 = cgroupLayout{
		limitFile: "memory.limit_in_bytes", usageFile: "memory.usage_in_bytes",
		inactiveKey: "total_inactive_file",
		unlimited: func(s string) bool {
			n, err := strconv.ParseInt(s, 10, 64)
			return err != nil || n >= cgroupV1Unlimited
		},
	}
	cgroupV2 = cgroupLayout{
		limitFile: "memory.max", usageFile: "memory.current",
		inactiveKey: "inactive_file",
		unlimited:   func(s string) bool { return s == "max" },
	}
)

// readCgroupMemory finds this process's memory cgroup from selfCgroup (a
// /proc/self/cgroup file): the v1 memory controller's path under
// cgroupRoot/memory when there is one, else the v2 path under cgroupRoot.
func readCgroupMemory(selfCgroup, cgroupRoot string) cgroupMemory {
	none := cgroupMemory{limit: -1, usage: -1, headroom: -1}
	data, err := os.ReadFile(selfCgroup)
	if err != nil {
		return none
	}
	var v1, v2 string
	haveV1, haveV2 := false, false
	for line := range strings.SplitSeq(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2, haveV2 = parts[2], true
		case containsWord(parts[1], "memory"):
			v1, haveV1 = parts[2], true
		}
	}
	switch {
	case haveV1:
		return readCgroupLevels(filepath.Join(cgroupRoot, "memory"), v1, cgroupV1)
	case haveV2:
		return readCgroupLevels(cgroupRoot, v2, cgroupV2)
	}
	return none
}

func containsWord(list, word string) bool {
	for w := range strings.SplitSeq(list, ",") {
		if w == word {
			return true
		}
	}
	return false
}

// readCgroupLevels reads the cgroup at rel under the mount base, and its
// ancestors up to base.
func readCgroupLevels(base, rel string, l cgroupLayout) cgroupMemory {
	cg := cgroupMemory{limit: -1, usage: -1, headroom: -1}
	base = filepath.Clean(base)
	leaf := cgroupDir(base, rel)
	if leaf == "" {
		return cg
	}
	for dir := leaf; ; dir = filepath.Dir(dir) {
		limit, limited := readCgroupLimit(filepath.Join(dir, l.limitFile), l)
		usage, haveUsage := readCgroupUsage(dir, l)
		if dir == leaf && haveUsage {
			cg.usage = usage
		}
		if limited {
			if cg.limit < 0 || limit < cg.limit {
				cg.limit = limit
			}
			room := limit
			if haveUsage {
				room = max(limit-usage, 0)
			}
			if cg.headroom < 0 || room < cg.headroom {
				cg.headroom = room
			}
		}
		if dir == base || len(dir) <= len(base) {
			return cg
		}
	}
}

// cgroupDir is the directory of the cgroup rel under base. Inside a
// container without its own cgroup namespace, /proc/self/cgroup names the
// host's path while the container sees only its own cgroup mounted at base:
// then the longest suffix of rel that exists is it (base itself at worst).
func cgroupDir(base, rel string) string {
	parts := strings.Split(strings.Trim(rel, "/"), "/")
	for i := range parts {
		dir := filepath.Join(base, filepath.Join(parts[i:]...))
		if dir != base && !strings.HasPrefix(dir, base+string(filepath.Separator)) {
			continue // ".." in the path: stay under base
		}
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir
		}
	}
	if fi, err := os.Stat(base); err == nil && fi.IsDir() {
		return base
	}
	return ""
}

// readCgroupLimit reads a limit file; limited is false when it is missing
// or says there is no limit.
func readCgroupLimit(path string, l cgroupLayout) (limit int64, limited bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if l.unlimited(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// readCgroupUsage reads the usage file in dir, less the inactive file cache
// from memory.stat when that file has it.
func readCgroupUsage(dir string, l cgroupLayout) (int64, bool) {
	b, err := os.ReadFile(filepath.Join(dir, l.usageFile))
	if err != nil {
		return 0, false
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false
	}
	if stat, err := os.ReadFile(filepath.Join(dir, "memory.stat")); err == nil {
		for line := range strings.SplitSeq(string(stat), "\n") {
			key, val, ok := strings.Cut(line, " ")
			if ok && key == l.inactiveKey {
				if n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64); err == nil {
					usage -= min(n, usage)
				}
				break
			}
		}
	}
	return usage, true
}
