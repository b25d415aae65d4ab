//go:build linux || darwin || freebsd

package hw

import (
	"path/filepath"
	"testing"
)

func TestDetectDisk(t *testing.T) {
	base := t.TempDir()
	for _, path := range []string{base, filepath.Join(base, "models", "not", "yet")} {
		d := Detect(Options{DiskPath: path}).Disk
		if d.Path != path || d.Free <= 0 || d.Total < d.Free {
			t.Errorf("Disk(%s) = %+v", path, d)
		}
	}
	if d := Detect(Options{}).Disk; d != (Disk{}) {
		t.Errorf("no DiskPath: %+v", d)
	}
}
