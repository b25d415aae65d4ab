//go:build cuda

package cuda

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
	"github.com/gptoss/gptoss/runtime/sample"
	"github.com/gptoss/gptoss/runtime/synth"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.RemoveCached()
	os.Exit(code)
}

// BenchResult is what TestBenchSynthetic measures.
type BenchResult struct {
	Model             string  `json:"model"`
	Device            string  `json:"device"`
	LayoutBytes       int64   `json:"layout_bytes"`
	LoadSeconds       float64 `json:"load_s"`
	FirstTokenSeconds float64 `json:"load_to_first_token_s"`
	PrefillTokens     int     `json:"prefill_tokens"`
	PrefillTokPerSec  float64 `json:"prefill_tok_s"`
	Decode0TokPerSec  float64 `json:"decode_tok_s_ctx0"`
	Context8k         int     `json:"context_long"`
	Prefill8kTokPerS  float64 `json:"prefill_tok_s_to_long"`
	Decode8kTokPerSec float64 `json:"decode_tok_s_long"`
	PeakVRAMBytes     uint64  `json:"peak_vram_bytes"`
	DeviceUsedBytes   uint64  `json:"device_used_bytes"`
	CPUDecodeTokPerS  float64 `json:"cpu_decode_tok_s,omitempty"`
}

// randTokens returns n random token ids below V - 16 (a vocabulary of V
// with its last 16 ids left out).
func randTokens(r *rand.Rand, n, V int) []int32 {
	v := make([]int32, n)
	for i := range v {
		v[i] = int32(r.IntN(V - 16))
	}
	return v
}

// TestBenchSynthetic times the engine on a synthetic full-size model
// (random weights of gpt-oss-20b's or -120b's shapes): GPTOSS_BENCH=20b or
// 120b, GPTOSS_BENCH_DIR a scratch folder (the checkpoint and its layout),
// GPTOSS_BENCH_OUT a JSON file for the results, GPTOSS_BENCH_CPU=1 adds a
// short CPU-engine decode baseline, GPTOSS_BENCH_LAYOUT names a synthetic
// layout already written. It also prints a decode step's time with and
// without the CUDA graph and per-kernel profiles (decode at two contexts, a
// prefill chunk).
func TestBenchSynthetic(t *testing.T) {
	which := os.Getenv("GPTOSS_BENCH")
	if which == "" {
		t.Skip("set GPTOSS_BENCH=20b (and GPTOSS_BENCH_DIR) to run")
	}
	gpu(t)
	cfg, err := synth.Config(which)
	if err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("GPTOSS_BENCH_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	layoutPath := filepath.Join(dir, which+".layout")
	if p := os.Getenv("GPTOSS_BENCH_LAYOUT"); p != "" { // one written before (bench-engine's)
		layoutPath = p
	}
	if _, err := os.Stat(layoutPath); err != nil {
		start := time.Now()
		if err := synth.WriteLayout(layoutPath, cfg, 1); err != nil {
			t.Fatal(err)
		}
		t.Logf("synthetic %s layout written in %v", which, time.Since(start).Round(time.Millisecond))
	}
	l, err := convert.OpenLayout(layoutPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, _ := os.Stat(layoutPath)
	res := BenchResult{Model: "synthetic gpt-oss-" + which, LayoutBytes: fi.Size()}
	ctx := context.Background()
	V := l.Config.VocabSize
	r := rand.New(rand.NewPCG(1, 1))
	tokens := func(n int) []int32 { return randTokens(r, n, V) }

	// load → first token (page cache warm: the layout was just written or
	// read before)
	start := time.Now()
	m, err := Load(ctx, l, runtime.Options{DecodeQ8: os.Getenv("GPTOSS_DECODE_Q8") == "1"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	res.LoadSeconds = time.Since(start).Seconds()
	res.Device = m.Device()
	s0, err := m.newSequence(512 + 256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s0.Forward(ctx, tokens(1), false); err != nil {
		t.Fatal(err)
	}
	res.FirstTokenSeconds = time.Since(start).Seconds()

	decode := func(s *Sequence, n int) float64 {
		t.Helper()
		start := time.Now()
		for i := 0; i < n; i++ {
			tok, err := s.Greedy()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Forward(ctx, []int32{tok}, false); err != nil {
				t.Fatal(err)
			}
		}
		return float64(n) / time.Since(start).Seconds()
	}
	decode(s0, 8) // warm-up
	res.Decode0TokPerSec = decode(s0, 128)
	if s0.GraphErr != nil {
		t.Errorf("decoding without a CUDA graph: %v", s0.GraphErr)
	}
	if s0.PDLErr != nil {
		t.Errorf("decode graph without programmatic dependent launch: %v", s0.PDLErr)
	}
	// the one-token steps in this process: step times with and without the
	// graph, then per-kernel profiles (events between the launches: no
	// overlap, so profiled without PDL)
	pdl0, dec0 := s0.s.pdl, m.dec
	for _, v := range []struct {
		dec int
		pdl bool
	}{{dec0, pdl0}, {17, pdl0}, {12, pdl0}, {16, false}, {17, false}, {12, false}, {7, pdl0}, {3, pdl0}} {
		if v.dec == 17 && !m.v17OK() {
			t.Logf("dec=v17: the model or device is outside v17OK")
			continue
		}
		m.dec, s0.s.pdl = v.dec, v.pdl
		if err := recapture(s0); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("dec=v%d pdl=%v", v.dec, v.pdl)
		stepTimes(t, s0, "context ~140, "+what)
		if !v.pdl {
			profileStep(t, s0, 1, "decode step, context ~140, "+what)
		}
	}
	// v17's attention split size (fewest keys a split; a KV head whose
	// keys make one split skips the merge): the step with each, and the
	// attention kernel's time (profile, no PDL)
	if m.v17OK() {
		a0 := m.attnMin17
		for _, a := range []int{attnMinKeys, 64, 128, 256} {
			m.dec, m.attnMin17, s0.s.pdl = 17, a, pdl0
			if err := recapture(s0); err != nil {
				t.Fatal(err)
			}
			what := fmt.Sprintf("dec=v17 attn-min=%d", a)
			stepTimes(t, s0, "context ~140, "+what)
			profileStep(t, s0, 1, "decode step, context ~140, "+what)
		}
		m.attnMin17 = a0
	}
	m.dec, s0.s.pdl = dec0, pdl0
	m.fused = false
	if err := recapture(s0); err != nil {
		t.Fatal(err)
	}
	stepTimes(t, s0, "context ~140, unfused (v1 kernels)")
	m.fused = true
	s0.Close()

	res.PrefillTokens = 512
	s1, err := m.newSequence(1024)
	if err != nil {
		t.Fatal(err)
	}
	s1.Forward(ctx, tokens(64), false) // warm-up
	s1.Truncate(0)
	copy(s1.hTok, tokens(prefillChunk))
	// the two prefill MoE and GEMM kernels: FP32 (v1), tensor cores
	tc, gtc := m.moeTC, m.gemmTC
	for _, kind := range []string{"v1", "tc"} {
		m.moeTC, m.gemmTC = kind == "tc", kind == "tc"
		profileStep(t, s1, prefillChunk, "prefill chunk of 256 tokens at context 0, MoE and GEMM "+kind)
	}
	m.moeTC, m.gemmTC = tc, gtc
	start = time.Now()
	if _, err := s1.Forward(ctx, tokens(512), false); err != nil {
		t.Fatal(err)
	}
	res.PrefillTokPerSec = 512 / time.Since(start).Seconds()
	s1.Close()

	if os.Getenv("GPTOSS_BENCH_LONG") == "0" { // bench-engine measures the long context
		b, _ := json.MarshalIndent(res, "", "  ")
		fmt.Printf("BENCH %s\n", b)
		return
	}
	res.Context8k = 8192
	s2, err := m.newSequence(8192 + 256)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := s2.Forward(ctx, tokens(8192), false); err != nil {
		t.Fatal(err)
	}
	res.Prefill8kTokPerS = 8192 / time.Since(start).Seconds()
	decode(s2, 8)
	res.Decode8kTokPerSec = decode(s2, 128)
	stepTimes(t, s2, "context ~8.3k")
	profileStep(t, s2, 1, fmt.Sprintf("decode step, context ~8.3k, fused=%v", m.fused))
	res.PeakVRAMBytes = m.PeakDeviceBytes()
	free, total := m.d.memInfo()
	res.DeviceUsedBytes = total - free
	s2.Close()
	m.Close()

	if os.Getenv("GPTOSS_BENCH_CPU") == "1" {
		cm, err := cpu.Engine{}.Load(ctx, l, runtime.Options{})
		if err != nil {
			t.Fatal(err)
		}
		cs, err := cm.NewSequence(64)
		if err != nil {
			t.Fatal(err)
		}
		next := tokens(1)
		cs.Forward(ctx, next, false)
		start := time.Now()
		const n = 4
		for i := 0; i < n; i++ {
			out, err := cs.Forward(ctx, next, false)
			if err != nil {
				t.Fatal(err)
			}
			next = []int32{sample.Argmax(out)}
		}
		res.CPUDecodeTokPerS = n / time.Since(start).Seconds()
		cs.Close()
		cm.Close()
	}

	b, _ := json.MarshalIndent(res, "", "  ")
	fmt.Printf("BENCH %s\n", b)
	if p := os.Getenv("GPTOSS_BENCH_OUT"); p != "" {
		os.WriteFile(p, b, 0o644)
	}
}

// stepTimes prints a decode step's wall time with the graph and with
// direct launches (the difference is the launch overhead the graph saves).
func stepTimes(t *testing.T, q *Sequence, what string) {
	q.hTok[0] = 1
	q.hPos[0] = int32(q.n)
	const n = 30
	unlock := q.m.d.enter()
	defer unlock()
	var graph, direct time.Duration
	if q.graph != 0 {
		start := time.Now()
		for i := 0; i < n; i++ {
			if err := q.decodeGraph(); err != nil {
				t.Fatal(err)
			}
		}
		graph = time.Since(start) / n
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := q.runDirect(); err != nil {
			t.Fatal(err)
		}
	}
	direct = time.Since(start) / n
	fmt.Printf("STEP %s: %v with the CUDA graph, %v with direct launches\n", what, graph, direct)
}

// profileStep times each kernel of one forward pass of T tokens (direct
// launches, events around each) at the sequence's position, without
// advancing it, and prints the table.
func profileStep(t *testing.T, q *Sequence, T int, what string) {
	q.hPos[0] = int32(q.n)
	unlock := q.m.d.enter()
	defer unlock()
	defer func(pdl bool) { q.s.pdl = pdl }(q.s.pdl)
	q.s.pdl = false // events between the launches: nothing would overlap
	q.s.startProfile()
	if err := q.enqueue(T, 0); err != nil {
		t.Fatal(err)
	}
	names, ms, count, err := q.s.report()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, n := range names {
		total += ms[n]
	}
	fmt.Printf("PROFILE %s: %.3f ms of kernels\n", what, total)
	for _, n := range names {
		fmt.Printf("PROFILE   %-18s %4d launches %8.3f ms %5.1f%%\n", n, count[n], ms[n], 100*ms[n]/total)
	}
}

// recapture replaces the sequence's decode graph with one of the model's
// current kernel choices (the bench switches between them).
func recapture(q *Sequence) error {
	unlock := q.m.d.enter()
	defer unlock()
	if q.graph != 0 {
		drv.GraphExecDestroy(q.graph)
		q.graph = 0
	}
	return q.capture()
}

// TestBandwidthProbe: what one kernel that only streams reaches, by size
// and blocks per SM, launches back to back (as in a CUDA graph): the
// floor under the decode step's kernels, which each read 18–35 MB a layer.
func TestBandwidthProbe(t *testing.T) {
	if os.Getenv("GPTOSS_BENCH") == "" {
		t.Skip("set GPTOSS_BENCH=20b to run")
	}
	d, s := gpu(t)
	// 4 GiB: the launches of one size walk through it, each reading the
	// region after the last one's, so no launch finds its bytes in the
	// 50 MB L2 (session 4: re-reading one buffer had served the 4–35 MB
	// points from L2); "L2" rows re-read the first region as before
	const maxBytes = 4096 << 20
	buf, err := d.alloc(maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer d.free(buf)
	out, err := d.alloc(4)
	if err != nil {
		t.Fatal(err)
	}
	defer d.free(out)
	must(t, check("memset", drv.MemsetD8Async(buf, 1, maxBytes, s.s)))
	must(t, s.sync())
	var occ int32
	drv.OccupancyMaxBlocks(&occ, d.fn["bw_read"], 256, 0)
	var e0, e1 cuEvent
	drv.EventCreate(&e0, 0)
	drv.EventCreate(&e1, 0)
	defer drv.EventDestroy(e0)
	defer drv.EventDestroy(e1)
	for _, mb := range []int{4, 18, 35, 70, 280, 1160} {
		for _, bps := range []int{1, 2, int(occ)} {
			for _, fromL2 := range []bool{false, true} {
				if fromL2 && mb > 35 {
					continue
				}
				n := int64(mb) << 20 / 16
				g := grid(min(d.sms*bps, int(max(1, n/512/8))), 1, 1)
				regions := int64(maxBytes) / (int64(mb) << 20)
				at := func(i int) devPtr { // the i-th launch's region
					if fromL2 {
						return buf
					}
					return buf + devPtr(int64(i)%regions*(int64(mb)<<20))
				}
				const reps = 40
				// n is a long long: passed as a devPtr, the 8-byte argument
				for i := range 3 { // warm-up
					must(t, s.launch("bw_read", g, grid(256, 1, 1), at(i), devPtr(n), out))
				}
				drv.EventRecord(e0, s.s)
				for i := range reps {
					must(t, s.launch("bw_read", g, grid(256, 1, 1), at(3+i), devPtr(n), out))
				}
				drv.EventRecord(e1, s.s)
				must(t, s.sync())
				var ms float32
				drv.EventElapsedTime(&ms, e0, e1)
				us := float64(ms) * 1000 / reps
				src := "HBM"
				if fromL2 {
					src = "L2 "
				}
				fmt.Printf("PROBE %5d MB %s, %d blocks/SM: %8.1f µs a launch, %6.0f GB/s\n", mb, src, bps, us, float64(mb<<20)/us/1e3)
			}
		}
	}
}
