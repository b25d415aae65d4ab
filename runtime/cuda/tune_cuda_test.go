//go:build cuda

package cuda

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

// TestTune: GPTOSS_CUDA_DEC=auto on the golden checkpoint. The first load
// measures every version the device takes and keeps the result; the model
// then decodes the reference's greedy tokens; the second load reads the
// result without measuring; a file left by a load that ended while v17
// ran makes the next one reject v17 and measure the rest.
func TestTune(t *testing.T) {
	gpu(t)
	g := layouttest.Golden(t)
	t.Setenv("GPTOSS_CUDA_DEC", "auto")
	dir := t.TempDir()
	l := layouttest.Open(t, goldenDir)
	load := func() *Model {
		t.Helper()
		return loadTuned(t, l, dir)
	}

	m := load()
	r, versions := m.Tune, m.tuneVersions()
	if r.Cached || len(r.Steps) != len(versions) || r.Dec != m.dec || !slices.Contains(versions, r.Dec) {
		t.Fatalf("first load: %+v, versions %v, running v%d", r, versions, m.dec)
	}
	for i, s := range r.Steps {
		if s.Version != versions[i] {
			t.Fatalf("step %d is v%d, want v%d", i, s.Version, versions[i])
		}
		if s.Rejected != "" {
			// every version passes the golden test against the CPU engine
			t.Errorf("v%d rejected: %s", s.Version, s.Rejected)
		} else if s.StepMS <= 0 {
			t.Errorf("v%d measured %v ms", s.Version, s.StepMS)
		}
	}
	if _, err := os.Stat(tunePath(dir, r.Key)); err != nil {
		t.Fatalf("the result was not kept: %v", err)
	}
	// the chosen version decodes the reference's greedy tokens (graph path)
	seq, err := m.NewSequence(64)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	next := mustForward(t, seq, g.Greedy.Prompt)
	for i, want := range g.Greedy.Generated {
		if got := sample.Argmax(next); got != want {
			t.Fatalf("token %d: %d, the reference's %d (v%d)", i, got, want, m.dec)
		}
		next = mustForward(t, seq, []int32{want})
	}

	m2 := load()
	if !m2.Tune.Cached || m2.dec != r.Dec || !strings.Contains(m2.Kernels(), "cached") {
		t.Fatalf("second load: cached %v, v%d (first chose v%d)", m2.Tune.Cached, m2.dec, r.Dec)
	}

	// a tuning folder that cannot be written: only the reference runs
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	m4 := loadTuned(t, l, filepath.Join(blocker, "tune"))
	if m4.dec != versions[0] || m4.Tune.Unkept == nil {
		t.Fatalf("unwritable folder: v%d, unkept %v", m4.dec, m4.Tune.Unkept)
	}
	for _, s := range m4.Tune.Steps[1:] {
		if !strings.Contains(s.Rejected, "not run") {
			t.Fatalf("unwritable folder: %+v ran", s)
		}
	}

	if !slices.Contains(versions, 17) {
		t.Skipf("the device does not take v17 (versions %v)", versions)
	}
	if err := writeTune(dir, &TuneResult{Key: r.Key, Pending: 17, Steps: []TuneStep{{Version: 16}}}); err != nil {
		t.Fatal(err)
	}
	m3 := load()
	if m3.Tune.Cached || m3.dec == 17 {
		t.Fatalf("after a load that ended in v17: cached %v, v%d", m3.Tune.Cached, m3.dec)
	}
	for _, s := range m3.Tune.Steps {
		if s.Version == 17 && !strings.Contains(s.Rejected, "ended while it ran") {
			t.Fatalf("v17 after a load that ended in it: %+v", s)
		}
	}
	if kept := readTune(dir, r.Key); kept == nil || kept.Dec != m3.dec || kept.Pending != 0 {
		t.Fatalf("kept after the re-measurement: %+v", kept)
	}
}

func loadTuned(t *testing.T, l *convert.Layout, dir string) *Model {
	t.Helper()
	m, err := Load(context.Background(), l, runtime.Options{TuneDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if m.Tune == nil {
		t.Fatal("GPTOSS_CUDA_DEC=auto loaded without tuning")
	}
	t.Logf("%s (load %v, tuning %.3f s)", m.Kernels(), m.LoadTime, m.Tune.Seconds)
	return m
}
