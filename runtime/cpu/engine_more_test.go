package cpu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/layouttest"
	"github.com/gptoss/gptoss/runtime"
)

func loadSmallRing(t *testing.T, slack int) (*Model, *convert.Layout) {
	t.Helper()
	l := layouttest.Open(t, filepath.Join(goldenDir, "original"))
	m, err := Load(context.Background(), l, runtime.Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	m.slack = slack
	t.Cleanup(func() { m.Close() })
	return m, l
}

// The sliding layers' rings wrap (window 4, ring 5): prefill goes in
// sub-chunks of 2, decode overwrites old slots; logits still match.
func TestGoldenRingWraps(t *testing.T) {
	g := layouttest.Golden(t)
	m, _ := loadSmallRing(t, 1)
	V := m.c.VocabSize
	ctx := context.Background()
	seq, _ := m.NewSequence(0)
	logits, err := seq.Forward(ctx, g.Tokens, true)
	if err != nil {
		t.Fatal(err)
	}
	for p := range g.Tokens {
		if d := maxDiff(logits[p*V:(p+1)*V], g.LogitsF32[p]); d > 1e-3 {
			t.Fatalf("position %d: max |Δlogit| %g", p, d)
		}
	}
	dec, _ := m.NewSequence(0)
	for p, tok := range g.Tokens {
		lg, err := dec.Forward(ctx, []int32{tok}, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(lg, g.LogitsF32[p]); d > 1e-3 {
			t.Fatalf("decode position %d: max |Δlogit| %g", p, d)
		}
	}
}

func TestTruncate(t *testing.T) {
	g := layouttest.Golden(t)
	m, _ := loadSmallRing(t, 3) // ring 7: after 16 tokens it holds 9…15
	V := m.c.VocabSize
	ctx := context.Background()
	seq, _ := m.NewSequence(0)
	if _, err := seq.Forward(ctx, g.Tokens, false); err != nil {
		t.Fatal(err)
	}
	// Position 12 needs 9…11 in the window: still held.
	if err := seq.Truncate(12); err != nil {
		t.Fatal(err)
	}
	if seq.Len() != 12 {
		t.Fatalf("Len %d after Truncate(12)", seq.Len())
	}
	lg, err := seq.Forward(ctx, g.Tokens[12:], true)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if d := maxDiff(lg[i*V:(i+1)*V], g.LogitsF32[12+i]); d > 1e-3 {
			t.Fatalf("re-fed position %d: max |Δlogit| %g", 12+i, d)
		}
	}
	// Position 11 would need 8, which the ring dropped.
	err = seq.Truncate(11)
	if err == nil || !strings.Contains(err.Error(), "cannot go back to position 11") {
		t.Fatalf("Truncate(11) = %v, want the ring's limit", err)
	}
	if seq.Len() != 16 {
		t.Fatalf("a refused Truncate changed Len to %d", seq.Len())
	}
	if err := seq.Truncate(17); err == nil {
		t.Fatal("Truncate past the end accepted")
	}
	// With the real slack, going back to 0 works.
	m2, _ := loadSmallRing(t, TruncateSlack)
	s2, _ := m2.NewSequence(0)
	s2.Forward(ctx, g.Tokens, false)
	if err := s2.Truncate(0); err != nil {
		t.Fatal(err)
	}
	lg, err = s2.Forward(ctx, g.Tokens, true)
	if err != nil {
		t.Fatal(err)
	}
	for p := range g.Tokens {
		if d := maxDiff(lg[p*V:(p+1)*V], g.LogitsF32[p]); d > 1e-3 {
			t.Fatalf("after Truncate(0), position %d: max |Δlogit| %g", p, d)
		}
	}
}

type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestCancel(t *testing.T) {
	g := layouttest.Golden(t)
	m, _ := loadSmallRing(t, TruncateSlack)
	V := m.c.VocabSize
	seq, _ := m.NewSequence(0)
	if _, err := seq.Forward(context.Background(), g.Tokens[:8], false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := seq.Forward(ctx, g.Tokens[8:], false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward with a cancelled context: %v", err)
	}
	// Cancelled between layers: layers 0-1 wrote their caches for 8…15.
	if _, err := seq.Forward(&cancelAfter{context.Background(), 2}, g.Tokens[8:], false); !errors.Is(err, context.Canceled) {
		t.Fatalf("Forward cancelled midway: %v", err)
	}
	if seq.Len() != 8 {
		t.Fatalf("Len %d after cancelled Forwards, want 8", seq.Len())
	}
	lg, err := seq.Forward(context.Background(), g.Tokens[8:], true)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		if d := maxDiff(lg[i*V:(i+1)*V], g.LogitsF32[8+i]); d > 1e-3 {
			t.Fatalf("after cancel, position %d: max |Δlogit| %g", 8+i, d)
		}
	}
}

func TestForwardErrors(t *testing.T) {
	m, _ := loadSmallRing(t, TruncateSlack)
	ctx := context.Background()
	seq, _ := m.NewSequence(4)
	for _, c := range []struct {
		toks []int32
		want string
	}{
		{nil, "no tokens"},
		{[]int32{1, 1024}, "outside the vocabulary"},
		{[]int32{-1}, "outside the vocabulary"},
		{[]int32{1, 2, 3, 4, 5}, "exceed"},
	} {
		if _, err := seq.Forward(ctx, c.toks, false); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Forward(%v) = %v, want %q", c.toks, err, c.want)
		}
	}
	if seq.Len() != 0 {
		t.Fatalf("failed Forwards left Len %d", seq.Len())
	}
	if _, err := m.NewSequence(m.maxCtx + 1); err == nil {
		t.Error("a sequence longer than the model's context was accepted")
	}
}

// Longer than a chunk (256) and than the default ring (516): one prefill
// equals token-by-token decode everywhere.
func TestLongPrefillMatchesDecode(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	m, _ := loadSmallRing(t, TruncateSlack)
	V := m.c.VocabSize
	r := rand.New(rand.NewPCG(1, 1))
	toks := make([]int32, 600)
	for i := range toks {
		toks[i] = int32(r.IntN(V))
	}
	ctx := context.Background()
	pre, _ := m.NewSequence(0)
	all, err := pre.Forward(ctx, toks, true)
	if err != nil {
		t.Fatal(err)
	}
	all = append([]float32(nil), all...)
	dec, _ := m.NewSequence(0)
	worst := 0.0
	for p, tok := range toks {
		lg, err := dec.Forward(ctx, []int32{tok}, false)
		if err != nil {
			t.Fatal(err)
		}
		for i := range lg {
			worst = max(worst, math.Abs(float64(lg[i]-all[p*V+i])))
		}
	}
	if worst > 1e-3 {
		t.Fatalf("prefill vs decode over 600 tokens: max |Δlogit| %g", worst)
	}
	t.Logf("prefill vs decode, 600 tokens: max |Δlogit| %.2g", worst)
}

func TestExpertMLP(t *testing.T) {
	bothKernels(t, func(t *testing.T) {
		l := layouttest.Open(t, goldenDir)
		c := l.Config
		H, I := c.HiddenSize, c.IntermediateSize
		r := rand.New(rand.NewPCG(2, 3))
		x := randF32(r, H, 1)
		for _, layer := range []int{0, 3} {
			for _, e := range []int{0, c.NumExperts - 1} {
				deq := func(name string, rows, cols int) []float32 {
					b, s := l.Bytes(name+".blocks"), l.Bytes(name+".scales")
					per := rows * cols
					out := make([]float32, per)
					if err := convert.DequantMXFP4(b[e*per/2:(e+1)*per/2], s[e*per/32:(e+1)*per/32], out); err != nil {
						t.Fatal(err)
					}
					return out
				}
				p := "block." + string(rune('0'+layer)) + ".mlp."
				w1 := deq(p+"mlp1_weight", 2*I, H)
				w2 := deq(p+"mlp2_weight", H, I)
				b1, b2 := l.Bytes(p+"mlp1_bias"), l.Bytes(p+"mlp2_bias")
				a := make([]float64, I)
				for j := 0; j < I; j++ {
					var g, lin float64
					g, lin = bf64(b1, e*2*I+2*j), bf64(b1, e*2*I+2*j+1)
					for k := 0; k < H; k++ {
						g += float64(w1[(2*j)*H+k]) * float64(x[k])
						lin += float64(w1[(2*j+1)*H+k]) * float64(x[k])
					}
					g = math.Min(g, c.SwigluLimit)
					lin = math.Max(math.Min(lin, c.SwigluLimit), -c.SwigluLimit)
					a[j] = g / (1 + math.Exp(-1.702*g)) * (lin + 1)
				}
				want := make([]float64, H)
				for i := range want {
					want[i] = bf64(b2, e*H+i)
					for j := 0; j < I; j++ {
						want[i] += float64(w2[i*I+j]) * a[j]
					}
				}
				got := make([]float32, H)
				ExpertMLP(got, x, l, layer, e)
				near(t, "ExpertMLP", got, want, 1e-4)
			}
		}
	})
}

// Sequences of one model run from several goroutines at once.
func TestConcurrentSequences(t *testing.T) {
	g := layouttest.Golden(t)
	m, _ := loadSmallRing(t, TruncateSlack)
	errs := make(chan error, 4)
	for k := 0; k < 4; k++ {
		go func() {
			seq, _ := m.NewSequence(0)
			for p, tok := range g.Tokens {
				lg, err := seq.Forward(context.Background(), []int32{tok}, false)
				if err != nil {
					errs <- err
					return
				}
				if d := maxDiff(lg, g.LogitsF32[p]); d > 1e-3 {
					errs <- fmt.Errorf("position %d: max |Δlogit| %g", p, d)
					return
				}
			}
			errs <- nil
		}()
	}
	for k := 0; k < 4; k++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seq, _ := m.NewSequence(0)
	m.Close()
	if _, err := seq.Forward(context.Background(), g.Tokens[:1], false); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Forward after Close: %v", err)
	}
}

func TestPoolCoversEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 3, 8} {
		p := newPool(threads)
		for _, c := range [][2]int{{0, 1}, {1, 1}, {7, 1}, {100, 3}, {1000, 16}, {5, 100}} {
			n, grain := c[0], c[1]
			seen := make([]int32, n)
			var workers [16]bool
			p.For(n, grain, func(w, lo, hi int) {
				workers[w] = true // each worker id is one goroutine at a time
				for i := lo; i < hi; i++ {
					seen[i]++
				}
			})
			for i, v := range seen {
				if v != 1 {
					t.Fatalf("threads %d, n %d, grain %d: index %d run %d times", threads, n, grain, i, v)
				}
			}
			for w := threads; w < len(workers); w++ {
				if workers[w] {
					t.Fatalf("threads %d: worker id %d", threads, w)
				}
			}
		}
		p.Close()
		p.Close() // idempotent
	}
}
