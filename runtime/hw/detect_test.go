package hw

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDetectOddRoots: unreadable or bogus places give zeros, not panics.
func TestDetectOddRoots(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := Detect(Options{
		DiskPath:   "bad\x00path",
		NVMLLib:    file,
		CUDALib:    file,
		ProcRoot:   file,
		CgroupRoot: filepath.Join(file, "nope"),
	})
	if m.Memory != (Memory{}) || m.Disk.Free != 0 || m.GPUError == "" || m.GPUs == nil || m.CPU.Threads == 0 {
		t.Errorf("%+v", m)
	}
}
