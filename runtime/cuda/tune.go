package cuda

// Tuning the decode step on the GPU it runs on (GPTOSS_CUDA_DEC=auto).
//
// The decode kernels come in versions (v12, v16, v17; engine.go) whose
// speed depends on the GPU, not only on the model: v17's MoE kernels take
// 94 KB of shared memory a block, two blocks an SM on an H100 (228 KB) but
// one on an A100 (164 KB) or an RTX 4090 or L40S (100 KB), where v16 may
// win. With
// GPTOSS_CUDA_DEC=auto, Load measures every version that the model and the
// device take, on the weights it just loaded, and keeps the fastest one
// that agrees with the reference (v16, else v12):
//
//   - a scratch sequence is filled with tuneContext tokens (the prefill
//     kernels, the same for every version), then each version's one-token
//     step is captured as a CUDA graph and run once at the next position;
//     a version whose logits are not finite or differ from the
//     reference's by more than tuneTolerance (relative to the largest) is
//     rejected;
//   - the versions left run tuneRounds rounds of tuneSteps steps each, in
//     turn (so a clock change hits all of them), every step launched and
//     synchronised as Forward does; a version's time is its best round;
//   - the fastest wins, but a version replaces the reference only when it
//     is at least tuneMargin faster (noise must not flip the choice).
//
// The result is kept in Options.TuneDir (gptoss passes <cache>/tune), one
// JSON file per GPU, driver, kernel image and model shape, so only the
// first load on a machine pays (a graph capture and ~40 steps a version:
// ~0.3 s for 20b on an H100); a new binary, driver or GPU measures again.
// Before a version other than the reference first runs, the file records
// it as pending: a load that finds a pending version (the process faulted
// or hung while it ran) rejects it and measures the others, so a kernel
// that breaks on some GPU costs one failed load, not every load. Where the
// folder cannot be written, only the reference runs (no mark, no risk);
// where only the final result cannot be kept, the choice holds for this
// load (Kernels says so). With no folder (TuneDir "") every load measures.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/fsutil"
)

const (
	tuneContext   = 128  // tokens in the cache when the step is measured
	tuneSteps     = 8    // steps a round
	tuneRounds    = 4    // rounds (the first is also the warm-up)
	tuneMargin    = 0.01 // a version replaces the reference when ≥ 1% faster
	notRun        = "not run: the tuning folder: "
	tuneTolerance = 0.05 // |logit − reference| ≤ 0.05·max(1, max |reference|): a wrong kernel is off by O(max)
)

// TuneStep is one decode version's result.
type TuneStep struct {
	Version int `json:"version"`
	// StepMS is one decode step's time in its best round (0 when rejected).
	StepMS float64 `json:"step_ms,omitempty"`
	// MaxDiff is its largest |logit − the reference's| at the test position.
	MaxDiff float64 `json:"max_diff"`
	// Rejected says why it was not measured (empty: it was).
	Rejected string `json:"rejected,omitempty"`
}

// TuneResult is what tuning chose and why, as kept in the tuning file.
type TuneResult struct {
	Key string `json:"key"`
	// Dec is the chosen version (0: tuning did not finish).
	Dec int `json:"dec"`
	// Pending is the version running when the file was written (0: none).
	Pending int        `json:"pending,omitempty"`
	Steps   []TuneStep `json:"steps"`
	// Seconds is how long the measurement took.
	Seconds float64   `json:"seconds"`
	When    time.Time `json:"when"`
	// Cached says the result was read from the tuning file, not measured.
	Cached bool `json:"-"`
	// Unkept says why the result could not be kept (nil: it was, or there
	// is no tuning folder).
	Unkept error `json:"-"`
}

// String is the one-line summary the CLI prints.
func (r *TuneResult) String() string { return fmt.Sprintf("decode v%d", r.Dec) + r.detail() }

// detail is String after the version: " (tuned…: each version's step)".
func (r *TuneResult) detail() string {
	var b strings.Builder
	b.WriteString(" (tuned")
	if r.Cached {
		b.WriteString(", cached")
	}
	b.WriteString(":")
	for _, s := range r.Steps {
		if s.Rejected != "" {
			fmt.Fprintf(&b, " v%d rejected (%s);", s.Version, s.Rejected)
		} else {
			fmt.Fprintf(&b, " v%d %.3f ms;", s.Version, s.StepMS)
		}
	}
	out := strings.TrimSuffix(b.String(), ";") + ")"
	if r.Unkept != nil {
		out += "; not kept: " + r.Unkept.Error()
	}
	return out
}

// tuneKey names what the choice depends on: the GPU, the driver, the
// kernel image, the model's shape, v17's attention split and PDL.
func tuneKey(gpu string, ccMajor, ccMinor, sms, driver int, image string, c convert.ModelConfig, attnMin int, pdl, q8 bool) string {
	q := ""
	if q8 {
		q = " q8" // the decode weights (absent for BF16: earlier keys stay valid)
	}
	return fmt.Sprintf("gpu=%q cc=%d.%d sms=%d driver=%d kernels=%s layers=%d hidden=%d inter=%d experts=%d topk=%d heads=%d/%d headdim=%d vocab=%d window=%d attnmin=%d pdl=%v%s",
		gpu, ccMajor, ccMinor, sms, driver, image, c.NumHiddenLayers, c.HiddenSize, c.IntermediateSize, c.NumExperts,
		c.ExpertsPerToken, c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim, c.VocabSize, c.SlidingWindow, attnMin, pdl, q)
}

// tunePath is the key's file in dir.
func tunePath(dir, key string) string {
	h := sha256.Sum256([]byte(key))
	return filepath.Join(dir, "cuda-"+hex.EncodeToString(h[:8])+".json")
}

// readTune returns the key's result in dir; nil when there is none or the
// file is not one (unreadable, another key): it is measured again and
// the file replaced.
func readTune(dir, key string) *TuneResult {
	if dir == "" {
		return nil
	}
	b, err := os.ReadFile(tunePath(dir, key))
	if err != nil {
		return nil
	}
	var r TuneResult
	if json.Unmarshal(b, &r) != nil || r.Key != key {
		return nil
	}
	return &r
}

// writeTune replaces the key's file atomically (fsutil.WriteFileAtomic):
// a reader sees the old result or the new one, never a part.
func writeTune(dir string, r *TuneResult) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// temporary files a killed writer left (an hour old: none is in use)
	old, _ := filepath.Glob(filepath.Join(dir, ".cuda-*.tmp"))
	for _, p := range old {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(p)
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(tunePath(dir, r.Key), append(b, '\n'), 0o644)
}

// checkLogits compares a version's logits with the reference's: the
// largest difference, and why it is rejected ("" when it is not).
func checkLogits(ref, got []float32) (float64, string) {
	if len(ref) != len(got) || len(ref) == 0 {
		return 0, fmt.Sprintf("%d logits against the reference's %d", len(got), len(ref))
	}
	var diff, scale float64
	for i, r := range ref {
		g := float64(got[i])
		if math.IsNaN(g) || math.IsInf(g, 0) {
			return math.MaxFloat64, fmt.Sprintf("logit %d is %v", i, g) // (JSON has no Inf)
		}
		diff = math.Max(diff, math.Abs(g-float64(r)))
		scale = math.Max(scale, math.Abs(float64(r)))
	}
	// (within tol everywhere, the greedy token can change only where the
	// reference's top two are within 2·tol of each other)
	if tol := tuneTolerance * math.Max(1, scale); !(diff <= tol) { // (NaN in ref: rejected)
		return diff, fmt.Sprintf("logits differ from the reference's by %.3g (limit %.3g)", diff, tol)
	}
	return diff, ""
}

// pickDec is the chosen version: the fastest measured one, the reference
// (steps[0]) unless another is at least tuneMargin faster.
func pickDec(steps []TuneStep) int {
	if len(steps) == 0 {
		return 0
	}
	best := -1
	for i, s := range steps {
		if s.Rejected != "" || s.StepMS <= 0 {
			continue
		}
		if best < 0 || s.StepMS < steps[best].StepMS {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	ref := steps[0]
	if best != 0 && ref.Rejected == "" && ref.StepMS > 0 && steps[best].StepMS > ref.StepMS*(1-tuneMargin) {
		return ref.Version
	}
	return steps[best].Version
}

// tuneVersions are the decode versions the model and device take, the
// reference first: v16, v17, v12 (v12 alone where v16OK fails).
func (m *Model) tuneVersions() []int {
	if !m.v16OK() {
		return []int{12}
	}
	v := []int{16}
	if m.v17OK() {
		v = append(v, 17)
	}
	return append(v, 12)
}

// tuneKey is the model's key on its device.
func (m *Model) tuneKey() string {
	var drvVer int32
	if drv.DriverGetVersion != nil {
		drv.DriverGetVersion(&drvVer)
	}
	return tuneKey(m.d.name, m.d.ccMajor, m.d.ccMinor, m.d.sms, int(drvVer), m.d.imageSum, m.cfg, m.attnMin17, m.pdl && m.d.pdlOK(), m.q8())
}

// lockTune takes the key's lock in dir (flock on a file beside the
// result), waiting while another process measures: it then reads that
// process's result instead of measuring beside it (and taking its pending
// mark for a death). Without a folder, or where the lock file cannot be
// made, it returns a no-op (the pending write then fails too and only the
// reference runs).
func lockTune(ctx context.Context, dir, key string) (func(), error) {
	nop := func() {}
	if dir == "" || os.MkdirAll(dir, 0o755) != nil {
		return nop, nil
	}
	unlock, err := fsutil.Flock(ctx, strings.TrimSuffix(tunePath(dir, key), ".json")+".lock", true)
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case err != nil:
		return nop, nil
	}
	return unlock, nil
}

// tuneRunner runs the decode versions for measureTune: gpuRunner on the
// device, a fake in the tests (which drive every path of measureTune on
// a machine without a GPU).
type tuneRunner interface {
	// capture prepares version v's one-token step.
	capture(v int) error
	// step runs v's step once at the test position and waits for it.
	step(v int) error
	// logits are the last step's.
	logits() []float32
	// reset zeroes what the versions share and must find zero at a step's
	// start, after another version's steps.
	reset() error
	// now is the clock the rounds are timed with.
	now() time.Time
	close()
}

// autotune sets m.dec from dir's result for this GPU and model, else
// from a measurement it then keeps there (see the top of this file). It
// returns nil where there is nothing to choose from (no CUDA graph).
func (m *Model) autotune(ctx context.Context, dir string) (*TuneResult, error) {
	versions := m.tuneVersions()
	m.dec = versions[0]
	r, err := measureTune(ctx, dir, m.tuneKey(), versions, func() (tuneRunner, error) { return m.newGPURunner(ctx) })
	m.dec = versions[0] // (the runner switches it while it measures)
	if r != nil {
		m.dec = r.Dec
	}
	return r, err
}

// gpuRunner measures on the model's GPU: a scratch sequence filled with
// tuneContext tokens, one graph per version, every step at the next
// position (rewriting the same cache row).
type gpuRunner struct {
	m      *Model
	q      *Sequence
	graphs map[int]cuGraphExec
	tok    int32
	pos    int32
}

// newGPURunner returns nil (and no error) where the device cannot capture
// a graph (a driver without it, GPTOSS_CUDA_GRAPH=0): nothing to measure.
func (m *Model) newGPURunner(ctx context.Context) (tuneRunner, error) {
	q, err := m.newSequence(tuneContext + 1)
	if err != nil {
		return nil, err
	}
	if q.graph == 0 {
		q.Close()
		return nil, nil
	}
	V, P := m.cfg.VocabSize, min(tuneContext, q.maxLen-1)
	toks := make([]int32, P+1)
	for i := range toks {
		toks[i] = int32((i*7919 + 13) % V)
	}
	if _, err := q.Forward(ctx, toks[:P], false); err != nil {
		q.Close()
		return nil, err
	}
	return &gpuRunner{m: m, q: q, graphs: map[int]cuGraphExec{}, tok: toks[P], pos: int32(P)}, nil
}

func (g *gpuRunner) capture(v int) error {
	defer g.m.d.enter()()
	if g.q.graph != 0 && g.m.dec == v {
		// the graph newSequence captured is this version's
		g.graphs[v], g.q.graph = g.q.graph, 0
		return nil
	}
	g.m.dec = v
	if g.q.graph != 0 {
		drv.GraphExecDestroy(g.q.graph)
		g.q.graph = 0
	}
	if err := g.q.capture(); err != nil {
		return err
	}
	if old, ok := g.graphs[v]; ok {
		drv.GraphExecDestroy(old)
	}
	g.graphs[v], g.q.graph = g.q.graph, 0
	return nil
}

func (g *gpuRunner) step(v int) error {
	defer g.m.d.enter()()
	e, ok := g.graphs[v]
	if !ok {
		return fmt.Errorf("v%d was not captured", v)
	}
	g.q.hTok[0], g.q.hPos[0] = g.tok, g.pos
	if err := check("cuGraphLaunch", drv.GraphLaunch(e, g.q.s.s)); err != nil {
		return err
	}
	return g.q.s.sync()
}

func (g *gpuRunner) logits() []float32 { return g.q.hLogits }

func (g *gpuRunner) reset() error {
	defer g.m.d.enter()()
	q := g.q
	return errors.Join(
		check("cuMemsetD8", drv.MemsetD8Async(q.sums, 0, 2*partFloats*4, q.s.s)),
		check("cuMemsetD8", drv.MemsetD8Async(q.attnCnt, 0, uint64(g.m.cfg.NumKeyValueHeads*4), q.s.s)),
		q.s.sync())
}

func (g *gpuRunner) now() time.Time { return time.Now() }

func (g *gpuRunner) close() {
	unlock := g.m.d.enter()
	for _, e := range g.graphs {
		drv.GraphExecDestroy(e)
	}
	unlock()
	g.q.Close()
}

// measureTune is autotune's logic: dir's result for key when there is a
// finished one, else a measurement of versions (the reference first) with
// the runner open returns (nil: nothing to measure, nil result), kept in
// dir. The result's Dec is the version to run.
func measureTune(ctx context.Context, dir, key string, versions []int, open func() (tuneRunner, error)) (*TuneResult, error) {
	unlock, err := lockTune(ctx, dir, key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	prev := readTune(dir, key)
	dec, rejected := fromEarlier(prev, versions)
	if dec != 0 {
		prev.Cached = true
		return prev, nil
	}
	if prev != nil && prev.Pending != 0 {
		// the death is recorded as a rejection before anything runs, so
		// the file never names a version that is not running
		c := &TuneResult{Key: key, When: time.Now().UTC()}
		for _, v := range versions {
			if why, ok := rejected[v]; ok {
				c.Steps = append(c.Steps, TuneStep{Version: v, Rejected: why})
			}
		}
		writeTune(dir, c) // (if this fails, so do the marks: only the reference runs)
	}
	r, err := open()
	if err != nil || r == nil {
		return nil, err
	}
	defer r.close()
	start := r.now()
	res := &TuneResult{Key: key, When: time.Now().UTC()}
	ref := versions[0]
	// the pending mark names the version other than the reference that
	// runs now; a return (not a death) clears it: the next load then
	// measures again, keeping only real rejections
	mark := func(v int) error {
		if v == ref {
			v = 0
		}
		if v == res.Pending {
			return nil
		}
		old := res.Pending
		res.Pending = v
		if err := writeTune(dir, res); err != nil {
			res.Pending = old
			return err
		}
		return nil
	}
	defer func() {
		if res.Pending != 0 {
			c := *res
			c.Pending, c.Dec = 0, 0
			writeTune(dir, &c)
		}
	}()
	// a version that failed: rejected (kept, so the next load leaves it
	// out); the reference's next step says whether the context survived
	failed := func(i int, err error) error {
		v := res.Steps[i].Version
		res.Steps[i].Rejected, res.Steps[i].StepMS = err.Error(), 0
		if v == ref {
			return fmt.Errorf("v%d: %w", v, err)
		}
		res.Pending = 0
		writeTune(dir, res)
		if herr := errors.Join(r.reset(), r.step(ref)); herr != nil {
			return fmt.Errorf("v%d: %w (the next load leaves it out; GPTOSS_CUDA_DEC=v%d does not tune)", v, err, ref)
		}
		return nil
	}
	var refLogits []float32
	for _, v := range versions {
		if why, ok := rejected[v]; ok && v != ref {
			res.Steps = append(res.Steps, TuneStep{Version: v, Rejected: why})
			continue
		}
		if err := mark(v); err != nil {
			// without the mark a fault here would recur at every load
			res.Steps = append(res.Steps, TuneStep{Version: v, Rejected: notRun + err.Error()})
			continue
		}
		res.Steps = append(res.Steps, TuneStep{Version: v})
		i := len(res.Steps) - 1
		err := r.capture(v)
		if err == nil {
			err = r.step(v)
		}
		if err == nil && v != ref {
			err = r.reset()
		}
		if err != nil {
			if err := failed(i, err); err != nil {
				return nil, err
			}
			continue
		}
		if v == ref {
			refLogits = append([]float32(nil), r.logits()...)
			if _, why := checkLogits(refLogits, refLogits); why != "" {
				return nil, fmt.Errorf("v%d, the reference: %s", v, why)
			}
		} else {
			res.Steps[i].MaxDiff, res.Steps[i].Rejected = checkLogits(refLogits, r.logits())
		}
	}
	best := make([]float64, len(res.Steps))
	for round := 0; round < tuneRounds; round++ {
		for i := range res.Steps {
			v := res.Steps[i].Version
			if res.Steps[i].Rejected != "" {
				continue
			}
			if err := mark(v); err != nil {
				res.Steps[i].Rejected, best[i] = notRun+err.Error(), 0
				continue
			}
			t0 := r.now()
			var err error
			for k := 0; k < tuneSteps && err == nil; k++ {
				err = r.step(v)
			}
			if ms := float64(r.now().Sub(t0).Microseconds()) / 1e3 / tuneSteps; err == nil && round > 0 && (best[i] == 0 || ms < best[i]) {
				best[i] = ms
			}
			if err == nil && v != ref {
				err = r.reset()
			}
			if err != nil {
				best[i] = 0
				if err := failed(i, err); err != nil {
					return nil, err
				}
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	if err := mark(ref); err != nil { // (clears the mark)
		res.Unkept = err
	}
	for i := range res.Steps {
		res.Steps[i].StepMS = best[i]
	}
	res.Dec = pickDec(res.Steps)
	if res.Dec == 0 {
		return nil, errors.New("no decode version passed")
	}
	res.Seconds = r.now().Sub(start).Seconds()
	for _, s := range res.Steps {
		if strings.HasPrefix(s.Rejected, notRun) {
			// a version left out only because the folder failed: the next
			// load measures again rather than leave it out for good
			res.Unkept = errors.New("a version did not run")
			return res, nil
		}
	}
	if res.Unkept != nil {
		return res, nil
	}
	if err := writeTune(dir, res); err != nil {
		res.Unkept = err // the choice holds for this load; the next measures again
	}
	return res, nil
}

// fromEarlier reads what an earlier load left for this key: the version
// to run when its measurement finished with one of versions (0: measure
// again), else what it rejected, the version it was running when it ended
// among them (that process faulted or hung, or was killed).
func fromEarlier(prev *TuneResult, versions []int) (int, map[int]string) {
	rejected := map[int]string{}
	if prev == nil {
		return 0, rejected
	}
	if prev.Dec != 0 && prev.Pending == 0 && slices.Contains(versions, prev.Dec) {
		return prev.Dec, nil
	}
	if prev.Dec == 0 {
		for _, s := range prev.Steps {
			if s.Rejected != "" && !strings.HasPrefix(s.Rejected, notRun) {
				rejected[s.Version] = s.Rejected
			}
		}
		if prev.Pending != 0 {
			rejected[prev.Pending] = "an earlier load ended while it ran (a fault, a hang or a kill)"
		}
	}
	return 0, rejected
}
