package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Two pulls of one revision link the same snapshot files at the same
// moment: neither may fail or leave a temp link behind.
func TestConcurrentSnapshotLinks(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for i := 0; i < 16; i++ {
		files[fmt.Sprintf("f%02d.json", i)] = fmt.Sprintf("content %d", i)
	}
	m := manifest(t, s, "hf", files)
	for round := 0; round < 40; round++ {
		if err := os.RemoveAll(s.SnapshotDir(m)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.linkSnapshot(m); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		entries, err := os.ReadDir(s.SnapshotDir(m))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.Contains(e.Name(), snapshotTmp) {
				t.Fatalf("round %d: temp link left: %s", round, e.Name())
			}
		}
		if len(entries) != len(files) {
			t.Fatalf("round %d: %d files in the snapshot, want %d", round, len(entries), len(files))
		}
		for p, c := range files {
			if b, err := os.ReadFile(filepath.Join(s.SnapshotDir(m), p)); err != nil || string(b) != c {
				t.Fatalf("round %d: %s: %q %v", round, p, b, err)
			}
		}
	}
}
