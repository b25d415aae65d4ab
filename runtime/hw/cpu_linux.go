//go:build linux

package hw

import "golang.org/x/sys/unix"

// usableCPUs returns the logical CPUs in this process's affinity mask, or
// nil when it cannot be read.
func usableCPUs() map[int]bool {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	usable := map[int]bool{}
	for i, n := 0, set.Count(); len(usable) < n; i++ {
		if set.IsSet(i) {
			usable[i] = true
		}
	}
	return usable
}
