package hw

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/klauspost/cpuid/v2"
)

// detectCPU describes the processor: the model and instruction-set
// extensions from CPUID, the logical CPUs this process may run on
// (runtime.NumCPU, which honours the affinity mask) and the physical cores
// among them (from procRoot/cpuinfo where it gives a topology, else CPUID).
func detectCPU(procRoot string) CPU {
	c := CPU{
		Model:   strings.TrimSpace(cpuid.CPU.BrandName),
		Threads: runtime.NumCPU(),
		AVX2:    cpuid.CPU.Supports(cpuid.AVX2),
		AVX512:  cpuid.CPU.Supports(cpuid.AVX512F, cpuid.AVX512BW, cpuid.AVX512VL),
		AMX:     cpuid.CPU.Supports(cpuid.AMXTILE, cpuid.AMXBF16),
	}
	info := readCPUInfo(filepath.Join(procRoot, "cpuinfo"))
	if c.Model == "" {
		c.Model = info.model
	}
	if c.Model == "" {
		c.Model = runtime.GOARCH
	}
	c.Cores = info.cores(usableCPUs())
	if c.Cores == 0 {
		c.Cores = cpuid.CPU.PhysicalCores // per package, and blind to affinity
	}
	if c.Cores <= 0 || c.Cores > c.Threads {
		c.Cores = c.Threads
	}
	return c
}

// cpuInfo is what /proc/cpuinfo says about the processors.
type cpuInfo struct {
	model string
	procs []cpuProc
}

// cpuProc is one logical CPU of /proc/cpuinfo; core is "" where the kernel
// gives no topology (arm64, some VMs).
type cpuProc struct {
	id   int
	core string // "<physical id>/<core id>"
}

// readCPUInfo parses a /proc/cpuinfo file; an unreadable one gives nothing.
func readCPUInfo(path string) cpuInfo {
	var info cpuInfo
	f, err := os.Open(path)
	if err != nil {
		return info
	}
	defer f.Close()
	var (
		cur                cpuProc
		inProc             bool
		physical, coreID   string
		hasPhys, hasCoreID bool
	)
	flush := func() {
		if inProc {
			if hasPhys && hasCoreID {
				cur.core = physical + "/" + coreID
			}
			info.procs = append(info.procs, cur)
		}
		cur, inProc, hasPhys, hasCoreID = cpuProc{}, false, false, false
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			if strings.TrimSpace(sc.Text()) == "" {
				flush()
			}
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			if n, err := strconv.Atoi(val); err == nil {
				cur.id, inProc = n, true
			}
		case "physical id":
			physical, hasPhys = val, true
		case "core id":
			coreID, hasCoreID = val, true
		case "model name":
			if info.model == "" {
				info.model = val
			}
		}
	}
	flush()
	return info
}

// cores counts the distinct physical cores among the logical CPUs in
// usable (all of them when usable is nil). It is 0 when the file gave no
// topology for one of those CPUs, or none of them.
func (info cpuInfo) cores(usable map[int]bool) int {
	seen := map[string]bool{}
	for _, p := range info.procs {
		if usable != nil && !usable[p.id] {
			continue
		}
		if p.core == "" {
			return 0
		}
		seen[p.core] = true
	}
	return len(seen)
}
