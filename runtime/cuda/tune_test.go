package cuda

// The host side of tuning (tune.go), everywhere: the file it keeps, the
// key, what an earlier load's file means, the logits check and the choice.
// The measurement itself runs on a GPU (TestTune, cuda tag).

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/convert"
)

func TestTuneFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tune")
	key := tuneKey("NVIDIA H100 80GB HBM3", 9, 0, 132, 13000, "0123456789abcdef", convert.ModelConfig{NumHiddenLayers: 24}, 128, true, false)
	if r := readTune(dir, key); r != nil {
		t.Fatalf("read before any write: %+v", r)
	}
	want := &TuneResult{Key: key, Dec: 17, Steps: []TuneStep{{Version: 16, StepMS: 2.2}, {Version: 17, StepMS: 1.9, MaxDiff: 0.01}, {Version: 12, Rejected: "x"}}, Seconds: 0.3}
	if err := writeTune(dir, want); err != nil {
		t.Fatal(err)
	}
	got := readTune(dir, key)
	if got == nil || got.Dec != 17 || len(got.Steps) != 3 || got.Steps[1].StepMS != 1.9 || got.Steps[2].Rejected != "x" || got.Cached {
		t.Fatalf("read back %+v", got)
	}
	// rewriting replaces the file and leaves no temporary one
	want.Dec = 16
	if err := writeTune(dir, want); err != nil {
		t.Fatal(err)
	}
	if got := readTune(dir, key); got == nil || got.Dec != 16 {
		t.Fatalf("after a rewrite: %+v", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), "cuda-") {
		t.Fatalf("the tuning folder holds %v, want one cuda-*.json", ents)
	}
	// another key has its own file; a file that is not this key's result
	// (another key's content, garbage, a truncated write) reads as none
	other := strings.Replace(key, "driver=13000", "driver=13010", 1)
	if tunePath(dir, other) == tunePath(dir, key) || readTune(dir, other) != nil {
		t.Fatal("another driver version reads this key's result")
	}
	b, _ := os.ReadFile(tunePath(dir, key))
	for name, content := range map[string][]byte{"other key": b, "garbage": []byte("not json"), "truncated": b[:len(b)/2]} {
		if err := os.WriteFile(tunePath(dir, other), content, 0o644); err != nil {
			t.Fatal(err)
		}
		if r := readTune(dir, other); r != nil {
			t.Errorf("%s: read as %+v", name, r)
		}
	}
	// a killed writer's temporary file goes once it is an hour old
	stale, fresh := filepath.Join(dir, ".cuda-stale.tmp"), filepath.Join(dir, ".cuda-fresh.tmp")
	os.WriteFile(stale, []byte("{"), 0o644)
	os.WriteFile(fresh, []byte("{"), 0o644)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	if err := writeTune(dir, want); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a two-hour-old temporary file is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file (another writer's) was removed: %v", err)
	}
	// no folder: nothing kept, nothing read
	if err := writeTune("", want); err != nil || readTune("", key) != nil {
		t.Fatalf("empty TuneDir: %v", err)
	}
	// a folder that cannot be made is an error, not a silent loss
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := writeTune(filepath.Join(blocker, "tune"), want); err == nil {
		t.Fatal("writing under a regular file succeeded")
	}
}

func TestTuneKey(t *testing.T) {
	cfg := convert.ModelConfig{NumHiddenLayers: 24, HiddenSize: 2880, IntermediateSize: 2880, NumExperts: 32, ExpertsPerToken: 4,
		NumAttentionHeads: 64, NumKeyValueHeads: 8, HeadDim: 64, VocabSize: 201088, SlidingWindow: 128}
	base := tuneKey("H100", 9, 0, 132, 13000, "aa", cfg, 128, true, false)
	if base != tuneKey("H100", 9, 0, 132, 13000, "aa", cfg, 128, true, false) {
		t.Fatal("the key is not stable")
	}
	c120 := cfg
	c120.NumHiddenLayers, c120.NumExperts = 36, 128
	for name, k := range map[string]string{
		"gpu":     tuneKey("RTX 4090", 9, 0, 132, 13000, "aa", cfg, 128, true, false),
		"cc":      tuneKey("H100", 8, 9, 132, 13000, "aa", cfg, 128, true, false),
		"sms":     tuneKey("H100", 9, 0, 114, 13000, "aa", cfg, 128, true, false),
		"driver":  tuneKey("H100", 9, 0, 132, 12080, "aa", cfg, 128, true, false),
		"kernels": tuneKey("H100", 9, 0, 132, 13000, "bb", cfg, 128, true, false),
		"model":   tuneKey("H100", 9, 0, 132, 13000, "aa", c120, 128, true, false),
		"attnmin": tuneKey("H100", 9, 0, 132, 13000, "aa", cfg, 64, true, false),
		"q8":      tuneKey("H100", 9, 0, 132, 13000, "aa", cfg, 128, true, true),
		"pdl":     tuneKey("H100", 9, 0, 132, 13000, "aa", cfg, 128, false, false),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", name)
		}
	}
}

func TestTuneFromEarlier(t *testing.T) {
	all := []int{16, 17, 12}
	if dec, rej := fromEarlier(nil, all); dec != 0 || len(rej) != 0 {
		t.Fatalf("no file: %d %v", dec, rej)
	}
	done := &TuneResult{Dec: 17, Steps: []TuneStep{{Version: 16, StepMS: 2}, {Version: 17, StepMS: 1.5}}}
	if dec, _ := fromEarlier(done, all); dec != 17 {
		t.Fatalf("a finished result: dec %d", dec)
	}
	// the version it chose is not one this device takes now: measure again
	if dec, rej := fromEarlier(done, []int{16, 12}); dec != 0 || len(rej) != 0 {
		t.Fatalf("a choice outside the versions: %d %v", dec, rej)
	}
	// the process ended while v17 ran, after v12 had been rejected
	crashed := &TuneResult{Pending: 17, Steps: []TuneStep{{Version: 16}, {Version: 12, Rejected: "logits differ"}}}
	dec, rej := fromEarlier(crashed, all)
	if dec != 0 || len(rej) != 2 || !strings.Contains(rej[17], "ended while it ran") || rej[12] != "logits differ" || rej[16] != "" {
		t.Fatalf("an unfinished measurement: %d %v", dec, rej)
	}
	// a version left out because the folder could not be written is
	// measured again, not left out for good
	folder := &TuneResult{Steps: []TuneStep{{Version: 16}, {Version: 17, Rejected: notRun + "read-only file system"}}}
	if dec, rej := fromEarlier(folder, all); dec != 0 || len(rej) != 0 {
		t.Fatalf("an unwritable folder's result: %d %v", dec, rej)
	}
}

func TestCheckLogits(t *testing.T) {
	ref := []float32{1, -3, 20, 19.9, 0.5}
	if d, why := checkLogits(ref, ref); d != 0 || why != "" {
		t.Fatalf("identical: %v %q", d, why)
	}
	near := []float32{1.1, -3.2, 19.8, 20.1, 0.6} // within 0.05·20 = 1; the top two swap, which is allowed that close
	if d, why := checkLogits(ref, near); why != "" || math.Abs(d-0.2) > 1e-5 {
		t.Fatalf("within the tolerance: %v %q", d, why)
	}
	far := append([]float32(nil), ref...)
	far[4] = 2 // 1.5 > 1
	if _, why := checkLogits(ref, far); !strings.Contains(why, "differ") {
		t.Fatalf("beyond the tolerance: %q", why)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		b := append([]float32(nil), ref...)
		b[1] = bad
		if _, why := checkLogits(ref, b); !strings.Contains(why, "logit 1 is") {
			t.Fatalf("%v: %q", bad, why)
		}
	}
	// a reference that is not finite passes nothing
	nanRef := append([]float32(nil), ref...)
	nanRef[2] = float32(math.NaN())
	if _, why := checkLogits(nanRef, ref); why == "" {
		t.Fatal("logits against a NaN reference passed")
	}
	if _, why := checkLogits(nanRef, nanRef); !strings.Contains(why, "logit 2 is NaN") {
		t.Fatalf("the reference against itself: %q", why)
	}
	// a rejected step's MaxDiff can be kept (JSON has no NaN or Inf)
	b := append([]float32(nil), ref...)
	b[0] = float32(math.Inf(-1))
	d, why := checkLogits(ref, b)
	dir := t.TempDir()
	r := &TuneResult{Key: "k", Dec: 16, Steps: []TuneStep{{Version: 16, StepMS: 1}, {Version: 17, MaxDiff: d, Rejected: why}}}
	if err := writeTune(dir, r); err != nil {
		t.Fatalf("keeping a step rejected for -Inf: %v", err)
	}
	if got := readTune(dir, "k"); got == nil || got.Steps[1].Rejected != why {
		t.Fatalf("read back %+v", got)
	}
	// small logits: the tolerance does not shrink below 0.05
	small := []float32{0.1, -0.1}
	if _, why := checkLogits(small, []float32{0.14, -0.1}); why != "" {
		t.Fatalf("small logits within 0.05: %q", why)
	}
	if _, why := checkLogits(small, []float32{0.16, -0.1}); why == "" {
		t.Fatal("small logits 0.06 apart passed")
	}
	if _, why := checkLogits(small, []float32{0.1}); why == "" {
		t.Fatal("a short row passed")
	}
}

func TestPickDec(t *testing.T) {
	for _, c := range []struct {
		name  string
		steps []TuneStep
		want  int
	}{
		{"faster by 20%", []TuneStep{{Version: 16, StepMS: 2.2}, {Version: 17, StepMS: 1.8}, {Version: 12, StepMS: 2.3}}, 17},
		{"within the margin", []TuneStep{{Version: 16, StepMS: 2.2}, {Version: 17, StepMS: 2.19}}, 16},
		{"reference fastest", []TuneStep{{Version: 16, StepMS: 2.2}, {Version: 17, StepMS: 2.5}, {Version: 12, StepMS: 2.3}}, 16},
		{"fastest rejected", []TuneStep{{Version: 16, StepMS: 2.2}, {Version: 17, Rejected: "differ"}, {Version: 12, StepMS: 2.1}}, 12},
		{"only the reference", []TuneStep{{Version: 12, StepMS: 3}}, 12},
		{"none", []TuneStep{{Version: 16, Rejected: "no CUDA graph"}}, 0},
		{"empty", nil, 0},
	} {
		if got := pickDec(c.steps); got != c.want {
			t.Errorf("%s: v%d, want v%d", c.name, got, c.want)
		}
	}
}

func TestTuneResultString(t *testing.T) {
	r := &TuneResult{Dec: 17, Cached: true, Steps: []TuneStep{{Version: 16, StepMS: 2.2414}, {Version: 17, StepMS: 1.9}, {Version: 12, Rejected: "logits differ"}}}
	want := "decode v17 (tuned, cached: v16 2.241 ms; v17 1.900 ms; v12 rejected (logits differ))"
	if got := r.String(); got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
	r.Cached, r.Unkept = false, errors.New("read-only file system")
	want = "decode v17 (tuned: v16 2.241 ms; v17 1.900 ms; v12 rejected (logits differ)); not kept: read-only file system"
	if got := r.String(); got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
}

// TestTuneLock: a second load waits while another process measures the
// same key (then it reads that result); without a folder there is no lock.
func TestTuneLock(t *testing.T) {
	dir, key := t.TempDir(), "gpu=x"
	unlock, err := lockTune(context.Background(), dir, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := lockTune(ctx, dir, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second lock while the first is held: %v, want the deadline", err)
	}
	other, err := lockTune(context.Background(), dir, "gpu=y")
	if err != nil {
		t.Fatalf("another key's lock: %v", err)
	}
	other()
	unlock()
	again, err := lockTune(context.Background(), dir, key)
	if err != nil {
		t.Fatalf("after the unlock: %v", err)
	}
	again()
	nop, err := lockTune(context.Background(), "", key)
	if err != nil {
		t.Fatal(err)
	}
	nop()
}

// fakeRunner stands in for the GPU in measureTune: each version's step
// advances a fake clock by its time (no real timing), returns its logits,
// and can fail, poison the "context" (every later call fails, as after an
// illegal address) or "die" (the tuning file as a killed process would
// leave it is kept, and the step fails). At every step it checks the
// crash-safety rule: the file marks the running version pending (0 for
// the reference).
type fakeRunner struct {
	t        *testing.T
	dir, key string
	ref      int
	clock    time.Time
	ms       map[int]float64
	logit    map[int][]float32
	fail     map[int]int // version → its step (1-based) that fails
	poison   bool        // a failure poisons every later call
	dieAt    map[int]int // version → its step at which the process "dies"
	died     []byte      // the file at that moment
	cancelAt int         // the total step count at which cancel is called
	cancel   func()
	noMarks  bool // no tuning folder: no marks to check
	dead     bool
	steps    map[int]int
	total    int
	resets   int
	last     int
	closed   bool
}

var fakeBase = []float32{3, -1, 12, 0.5, 7}

func newFake(t *testing.T, dir, key string, ms map[int]float64) *fakeRunner {
	return &fakeRunner{t: t, dir: dir, key: key, ref: 16, clock: time.Unix(0, 0), ms: ms, logit: map[int][]float32{},
		fail: map[int]int{}, dieAt: map[int]int{}, steps: map[int]int{}}
}

var errSticky = errors.New("CUDA_ERROR_ILLEGAL_ADDRESS")

func (f *fakeRunner) capture(v int) error {
	if f.dead {
		return errSticky
	}
	return nil
}

func (f *fakeRunner) step(v int) error {
	if f.dead {
		return errSticky
	}
	f.steps[v]++
	f.total++
	pending := 0
	if r := readTune(f.dir, f.key); r != nil {
		pending = r.Pending
	}
	if want := v; !f.noMarks && ((v == f.ref && pending != 0) || (v != f.ref && pending != want)) {
		f.t.Errorf("v%d ran while the file marked v%d pending", v, pending)
	}
	if n := f.dieAt[v]; n != 0 && f.steps[v] == n {
		f.died, _ = os.ReadFile(tunePath(f.dir, f.key))
		f.dead = true
		return errors.New("died")
	}
	if n := f.fail[v]; n != 0 && f.steps[v] == n {
		f.dead = f.poison
		return fmt.Errorf("v%d: launch failed", v)
	}
	if f.cancelAt != 0 && f.total == f.cancelAt {
		f.cancel()
	}
	f.clock = f.clock.Add(time.Duration(f.ms[v] * float64(time.Millisecond)))
	f.last = v
	return nil
}

func (f *fakeRunner) logits() []float32 {
	if l, ok := f.logit[f.last]; ok {
		return l
	}
	return fakeBase
}

func (f *fakeRunner) reset() error {
	if f.dead {
		return errSticky
	}
	f.resets++
	return nil
}

func (f *fakeRunner) now() time.Time { return f.clock }
func (f *fakeRunner) close()         { f.closed = true }

// TestMeasureTune drives every path of the measurement with fakeRunner.
func TestMeasureTune(t *testing.T) {
	all := []int{16, 17, 12}
	ms := func(a, b, c float64) map[int]float64 { return map[int]float64{16: a, 17: b, 12: c} }
	measure := func(t *testing.T, ctx context.Context, dir string, f *fakeRunner) (*TuneResult, error) {
		t.Helper()
		opened := false
		r, err := measureTune(ctx, dir, f.key, all, func() (tuneRunner, error) { opened = true; return f, nil })
		if opened && !f.closed {
			t.Error("the runner was not closed")
		}
		return r, err
	}
	cached := func(t *testing.T, dir, key string) *TuneResult {
		t.Helper()
		r, err := measureTune(context.Background(), dir, key, all, func() (tuneRunner, error) {
			t.Fatal("a finished result was measured again")
			return nil, nil
		})
		if err != nil || r == nil || !r.Cached {
			t.Fatalf("second load: %+v, %v", r, err)
		}
		return r
	}
	steps := func(r *TuneResult) map[int]TuneStep {
		m := map[int]TuneStep{}
		for _, s := range r.Steps {
			m[s.Version] = s
		}
		return m
	}

	t.Run("fastest", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		r, err := measure(t, context.Background(), dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Dec != 17 || r.Pending != 0 || len(r.Steps) != 3 || r.Unkept != nil {
			t.Fatalf("%+v", r)
		}
		for i, want := range []TuneStep{{Version: 16, StepMS: 2}, {Version: 17, StepMS: 1.5}, {Version: 12, StepMS: 2.5}} {
			if r.Steps[i] != want {
				t.Errorf("step %d: %+v, want %+v", i, r.Steps[i], want)
			}
		}
		// one check step and 4 rounds of 8 each; resets after each other version's
		if f.steps[16] != 1+tuneRounds*tuneSteps || f.steps[17] != f.steps[16] || f.resets != 2*(1+tuneRounds) {
			t.Errorf("steps %v, resets %d", f.steps, f.resets)
		}
		if kept := cached(t, dir, "k"); kept.Dec != 17 || kept.Steps[1].StepMS != 1.5 {
			t.Fatalf("kept %+v", kept)
		}
	})
	t.Run("margin", func(t *testing.T) {
		dir := t.TempDir()
		if r, err := measure(t, context.Background(), dir, newFake(t, dir, "k", ms(2, 1.99, 2.5))); err != nil || r.Dec != 16 {
			t.Fatalf("0.5%% faster: %+v, %v", r, err)
		}
	})
	t.Run("wrong logits", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 1))
		f.logit[12] = []float32{3, -1, 12, 0.5, 9} // 2 > 0.05·12
		r, err := measure(t, context.Background(), dir, f)
		if err != nil {
			t.Fatal(err)
		}
		s := steps(r)[12]
		if r.Dec != 17 || !strings.Contains(s.Rejected, "differ") || s.MaxDiff != 2 || s.StepMS != 0 || f.steps[12] != 1 {
			t.Fatalf("dec v%d, v12 %+v, stepped %d times", r.Dec, s, f.steps[12])
		}
		if kept := cached(t, dir, "k"); !strings.Contains(steps(kept)[12].Rejected, "differ") {
			t.Fatalf("kept %+v", kept)
		}
	})
	t.Run("death", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		f.dieAt[17] = 3 // in the first timing round
		measure(t, context.Background(), dir, f)
		if f.died == nil {
			t.Fatal("no file when v17 died")
		}
		// what the dead process left (its deferred cleanup never ran)
		if err := os.WriteFile(tunePath(dir, "k"), f.died, 0o644); err != nil {
			t.Fatal(err)
		}
		g := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		r, err := measure(t, context.Background(), dir, g)
		if err != nil {
			t.Fatal(err)
		}
		if r.Dec != 16 || !strings.Contains(steps(r)[17].Rejected, "ended while it ran") || g.steps[17] != 0 {
			t.Fatalf("after a death in v17: %+v, v17 stepped %d times", r, g.steps[17])
		}
	})
	t.Run("fails, context survives", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 1.8))
		f.fail[17] = 1
		r, err := measure(t, context.Background(), dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Dec != 12 || !strings.Contains(steps(r)[17].Rejected, "launch failed") {
			t.Fatalf("%+v", r)
		}
		cached(t, dir, "k")
	})
	t.Run("fails, context poisoned", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 1.8))
		f.fail[17], f.poison = 1, true
		if _, err := measure(t, context.Background(), dir, f); err == nil || !strings.Contains(err.Error(), "next load leaves it out") {
			t.Fatalf("err %v", err)
		}
		kept := readTune(dir, "k")
		if kept == nil || kept.Dec != 0 || kept.Pending != 0 || !strings.Contains(steps(kept)[17].Rejected, "launch failed") {
			t.Fatalf("left %+v", kept)
		}
		g := newFake(t, dir, "k", ms(2, 1.5, 1.8))
		r, err := measure(t, context.Background(), dir, g)
		if err != nil || r.Dec != 12 || g.steps[17] != 0 {
			t.Fatalf("the next load: %+v, %v, v17 stepped %d times", r, err, g.steps[17])
		}
	})
	t.Run("fails while timed", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 2.5, 1))
		f.fail[12] = 2 + tuneSteps // in the second round
		r, err := measure(t, context.Background(), dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if s := steps(r)[12]; r.Dec != 16 || !strings.Contains(s.Rejected, "launch failed") || s.StepMS != 0 {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("reference fails", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		f.fail[16] = 1
		if _, err := measure(t, context.Background(), dir, f); err == nil || !strings.HasPrefix(err.Error(), "v16:") {
			t.Fatalf("err %v", err)
		}
		if f.steps[17] != 0 {
			t.Fatal("other versions ran without a reference")
		}
	})
	t.Run("reference not finite", func(t *testing.T) {
		dir := t.TempDir()
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		f.logit[16] = []float32{1, float32(math.NaN())}
		if _, err := measure(t, context.Background(), dir, f); err == nil || !strings.Contains(err.Error(), "NaN") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		f.cancel, f.cancelAt = cancel, 3+tuneSteps+2 // inside v17's first round
		if _, err := measure(t, ctx, dir, f); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		if kept := readTune(dir, "k"); kept == nil || kept.Pending != 0 || kept.Dec != 0 {
			t.Fatalf("left %+v", kept) // no pending mark: nothing died
		}
		g := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		if r, err := measure(t, context.Background(), dir, g); err != nil || r.Dec != 17 {
			t.Fatalf("after a cancel: %+v, %v", r, err)
		}
	})
	t.Run("unwritable folder", func(t *testing.T) {
		blocker := filepath.Join(t.TempDir(), "file")
		os.WriteFile(blocker, nil, 0o644)
		dir := filepath.Join(blocker, "tune")
		f := newFake(t, dir, "k", ms(2, 1.5, 2.5))
		r, err := measure(t, context.Background(), dir, f)
		if err != nil {
			t.Fatal(err)
		}
		if r.Dec != 16 || r.Unkept == nil || f.steps[17] != 0 || f.steps[12] != 0 || !strings.HasPrefix(steps(r)[17].Rejected, notRun) {
			t.Fatalf("%+v, steps %v", r, f.steps)
		}
	})
	t.Run("no folder", func(t *testing.T) {
		f := newFake(t, "", "k", ms(2, 1.5, 2.5))
		f.noMarks = true
		r, err := measure(t, context.Background(), "", f)
		if err != nil || r.Dec != 17 || r.Unkept != nil {
			t.Fatalf("%+v, %v", r, err)
		}
	})
	t.Run("nothing to measure", func(t *testing.T) {
		r, err := measureTune(context.Background(), t.TempDir(), "k", all, func() (tuneRunner, error) { return nil, nil })
		if r != nil || err != nil {
			t.Fatalf("%+v, %v", r, err)
		}
	})
}
