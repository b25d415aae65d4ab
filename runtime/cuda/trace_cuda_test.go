//go:build cuda

package cuda

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
)

// traceRec is one warp's record from the trace build of the kernels
// (trace_end in kernels/gptoss.cu): its kernel, global-timer nanoseconds
// at the kernel's start, after its PDL wait and at the warp's end, and the
// SM clocks from the wait to the end.
type traceRec struct {
	kid                int
	t0, t1, t2, cycles uint64
}

// traceLaunch is one kernel launch of the step, its warps' records merged.
type traceLaunch struct {
	kid               int
	warps             int
	t0, t1, t2p50, t2 uint64 // earliest start, first wait release, median and last end
	cycles            float64
}

var traceKernel = map[int]string{1: "qkv_rope", 2: "attention", 3: "out_proj", 4: "norm_router",
	5: "moe_mlp1", 6: "moe_mlp2", 7: "moe_mlp2(v7)", 8: "unembed", 10: "out+sums"}

// traceLaunches groups the records by kernel and, within a kernel, into
// launches (the same kernel runs once a layer, ≥ 20 µs apart; the warps
// of one launch pass their wait together), ordered by wait release.
func traceLaunches(recs []traceRec) []traceLaunch {
	byKid := map[int][]traceRec{}
	for _, r := range recs {
		k := r.kid
		if k == 9 { // the attention's split merge (its last block)
			k = 2
		}
		byKid[k] = append(byKid[k], r)
	}
	var out []traceLaunch
	for kid, rs := range byKid {
		slices.SortFunc(rs, func(a, b traceRec) int { return int(int64(a.t1) - int64(b.t1)) })
		flush := func(g []traceRec) {
			if len(g) == 0 {
				return
			}
			l := traceLaunch{kid: kid, warps: len(g), t0: g[0].t0, t1: g[0].t1}
			ends := make([]uint64, len(g))
			for i, r := range g {
				l.t0 = min(l.t0, r.t0)
				ends[i] = r.t2
				l.cycles += float64(r.cycles)
			}
			slices.Sort(ends)
			l.t2p50, l.t2 = ends[len(ends)/2], ends[len(ends)-1]
			l.cycles /= float64(len(g))
			out = append(out, l)
		}
		start := 0
		for i := 1; i < len(rs); i++ {
			if rs[i].t1-rs[i-1].t1 > 20000 {
				flush(rs[start:i])
				start = i
			}
		}
		flush(rs[start:])
	}
	slices.SortFunc(out, func(a, b traceLaunch) int { return int(int64(a.t1) - int64(b.t1)) })
	return out
}

// TestDecodeTrace records one decode step (the CUDA graph, with and
// without programmatic dependent launch) warp by warp and prints where
// its time goes: per kernel, how long after the previous kernel's last
// warp ended its wait released, how long it then streamed, its tail (last
// warp's end after the median warp's) and the bytes a second that makes.
// It needs the trace build of the kernels (GPTOSS_CUDA_KERNELS=
// bin/kernels-trace.fatbin, `make cuda-trace`) and a layout
// (GPTOSS_TRACE_LAYOUT, e.g. bench-engine's synthetic 20b).
func TestDecodeTrace(t *testing.T) {
	path := os.Getenv("GPTOSS_TRACE_LAYOUT")
	if path == "" {
		t.Skip("set GPTOSS_TRACE_LAYOUT (and GPTOSS_CUDA_KERNELS=bin/kernels-trace.fatbin) to run")
	}
	gpu(t)
	l, err := convert.OpenLayout(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	// GPTOSS_DECODE_Q8=1: the Q8 decode weights (their kernels record the
	// same kernel ids as the BF16 ones)
	q8 := os.Getenv("GPTOSS_DECODE_Q8") == "1"
	m, err := Load(ctx, l, runtime.Options{DecodeQ8: q8})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var gTrace, gN devPtr
	var size uint64
	if drv.ModuleGetGlobal == nil || drv.ModuleGetGlobal(&gTrace, &size, m.d.mod, cStr("g_trace")) != 0 ||
		drv.ModuleGetGlobal(&gN, &size, m.d.mod, cStr("g_trace_n")) != 0 {
		t.Skip("these kernels record no trace (GPTOSS_CUDA_KERNELS=bin/kernels-trace.fatbin)")
	}
	c := m.cfg
	r := rand.New(rand.NewPCG(3, 3))
	prompt := randTokens(r, 128, c.VocabSize)
	q, err := m.newSequence(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Forward(ctx, prompt, false); err != nil {
		t.Fatal(err)
	}
	for range 8 { // captures the graph
		tok, err := q.Greedy()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Forward(ctx, []int32{tok}, false); err != nil {
			t.Fatal(err)
		}
	}
	const capRecs = 1 << 20 // TRACE_CAP
	buf, err := m.d.alloc(capRecs * 40)
	if err != nil {
		t.Fatal(err)
	}
	defer m.d.free(buf)
	H, I, E, k := c.HiddenSize, c.IntermediateSize, c.NumExperts, c.ExpertsPerToken
	bytes := map[int]float64{
		1: float64((c.NumAttentionHeads+2*c.NumKeyValueHeads)*c.HeadDim*H) * 2,
		3: float64(H*c.NumAttentionHeads*c.HeadDim) * 2,
		4: float64(E*H) * 2,
		5: float64(k*2*I*H) * 17 / 32,
		6: float64(k*H*I) * 17 / 32, 7: float64(k*H*I) * 17 / 32,
		8:  float64(c.VocabSize*H) * 2,
		10: float64(H*c.NumAttentionHeads*c.HeadDim)*2 + float64(E*H)*2,
	}
	if q8 { // 8.5 bits a weight instead of 16
		for _, id := range []int{1, 3, 8} {
			bytes[id] *= 17.0 / 32
		}
		bytes[10] = float64(H*c.NumAttentionHeads*c.HeadDim)*17/16 + float64(E*H)*2
	}
	unlock := m.d.enter()
	defer unlock()
	pdl0, dec0 := q.s.pdl, m.dec
	defer func() { q.s.pdl, m.dec = pdl0, dec0; recapture(q) }()
	for _, v := range []struct {
		dec int
		pdl bool
	}{{dec0, pdl0}, {17, pdl0}, {12, pdl0}, {dec0, false}} {
		if v.dec == 17 && !m.v17OK() {
			t.Logf("dec=v17: the model or device is outside v17OK")
			continue
		}
		q.s.pdl, m.dec = v.pdl, v.dec
		if err := recapture(q); err != nil {
			t.Fatal(err)
		}
		q.hTok[0] = 1
		q.hPos[0] = int32(q.n)
		for range 5 {
			must(t, q.decodeGraph())
		}
		var zero uint32
		on := uint64(buf)
		must(t, check("trace pointer", drv.MemcpyHtoDAsync(gTrace, unsafe.Pointer(&on), 8, q.s.s)))
		must(t, check("trace count", drv.MemcpyHtoDAsync(gN, unsafe.Pointer(&zero), 4, q.s.s)))
		must(t, q.s.sync())
		must(t, q.decodeGraph())
		var n uint32
		must(t, q.s.download(unsafe.Pointer(&n), gN, 4))
		var off uint64
		must(t, check("trace off", drv.MemcpyHtoDAsync(gTrace, unsafe.Pointer(&off), 8, q.s.s)))
		must(t, q.s.sync())
		if n == 0 {
			t.Fatal("the trace build recorded nothing")
		}
		n = min(n, capRecs)
		raw := make([]byte, int(n)*40)
		must(t, q.s.download(unsafe.Pointer(&raw[0]), buf, len(raw)))
		recs := make([]traceRec, n)
		for i := range recs {
			w := func(j int) uint64 { return binary.LittleEndian.Uint64(raw[40*i+8*j:]) }
			recs[i] = traceRec{kid: int(w(0)), t0: w(1), t1: w(2), t2: w(3), cycles: w(4)}
		}
		printTrace(t, fmt.Sprintf("decode step, context ~%d, dec=v%d pdl=%v q8=%v", q.n, m.dec, v.pdl, q8), traceLaunches(recs), bytes)
	}
}

// printTrace prints the first layer's launches and each kernel's means
// over the step.
func printTrace(t *testing.T, what string, ls []traceLaunch, bytes map[int]float64) {
	if len(ls) == 0 {
		t.Fatal("no launches")
	}
	base := ls[0].t0
	us := func(a, b uint64) float64 { return (float64(a) - float64(b)) / 1000 }
	fmt.Printf("TRACE %s: %d launches, %.1f µs from the first start to the last end\n", what, len(ls), us(ls[len(ls)-1].t2, base))
	fmt.Printf("TRACE   %-14s %6s %8s %8s %8s %8s %8s %8s %7s\n", "kernel", "warps", "start", "release", "end50", "end", "release", "busy", "GB/s")
	type agg struct {
		n                                  int
		start, release, busy, tail, cycles float64
	}
	sum := map[int]*agg{}
	for i, l := range ls {
		var prevEnd uint64
		if i > 0 {
			prevEnd = ls[i-1].t2
		} else {
			prevEnd = l.t1
		}
		rel, busy := us(l.t1, prevEnd), us(l.t2, l.t1)
		gbs := bytes[l.kid] / (busy * 1e3)
		if i < 14 || i == len(ls)-1 {
			fmt.Printf("TRACE   %-14s %6d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %7.0f\n", traceKernel[l.kid], l.warps,
				us(l.t0, base), us(l.t1, base), us(l.t2p50, base), us(l.t2, base), rel, busy, gbs)
		}
		a := sum[l.kid]
		if a == nil {
			a = &agg{}
			sum[l.kid] = a
		}
		a.n++
		a.start += us(l.t0, prevEnd)
		a.release += rel
		a.busy += busy
		a.tail += us(l.t2, l.t2p50)
		a.cycles += l.cycles
	}
	fmt.Printf("TRACE   means a launch (µs): start and release after the previous kernel's last warp, busy = release to last end, tail = last end after the median warp's\n")
	total := 0.0
	for _, kid := range []int{1, 2, 3, 10, 4, 5, 6, 7, 8} {
		a := sum[kid]
		if a == nil {
			continue
		}
		n := float64(a.n)
		total += (a.release + a.busy)
		gbs := 0.0
		if bytes[kid] > 0 {
			gbs = bytes[kid] / (a.busy / n * 1e3)
		}
		fmt.Printf("TRACE   %-14s %3d× start %7.1f release %5.1f busy %7.1f tail %5.1f  %6.0f GB/s  %6.0f cycles a warp  (release+busy %7.1f µs a step)\n",
			traceKernel[kid], a.n, a.start/n, a.release/n, a.busy/n, a.tail/n, gbs, a.cycles/n, a.release+a.busy)
	}
	fmt.Printf("TRACE   sum of release+busy: %.1f µs\n", total)
}
