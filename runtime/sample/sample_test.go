package sample

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func seeded(t *testing.T, p Params, seed uint64) *Sampler {
	t.Helper()
	p.Seed = &seed
	s, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// softmax of logits/T in float64.
func softmax(logits []float32, T float64) []float64 {
	mx := math.Inf(-1)
	for _, l := range logits {
		mx = math.Max(mx, float64(l))
	}
	out := make([]float64, len(logits))
	var sum float64
	for i, l := range logits {
		out[i] = math.Exp((float64(l) - mx) / T)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// chiSquare compares observed counts with expected probabilities over the
// support of want (ids with want > 0); a count outside it is a failure.
func chiSquare(t *testing.T, counts []int, want []float64, n int) (stat float64, df int) {
	t.Helper()
	for i, c := range counts {
		if want[i] == 0 {
			if c != 0 {
				t.Fatalf("token %d sampled %d times, but its probability is 0", i, c)
			}
			continue
		}
		e := want[i] * float64(n)
		stat += (float64(c) - e) * (float64(c) - e) / e
		df++
	}
	return stat, df - 1
}

// chi2Crit999 are the 0.999 quantiles of the chi-square distribution by
// degrees of freedom: a correct sampler fails one seed in a thousand.
var chi2Crit999 = map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52, 6: 22.46, 7: 24.32}

func draw(s *Sampler, logits []float32, n int) []int {
	counts := make([]int, len(logits))
	buf := make([]float32, len(logits))
	for range n {
		copy(buf, logits)
		counts[s.Sample(buf)]++
	}
	return counts
}

func TestTemperatureDistribution(t *testing.T) {
	logits := []float32{1.5, 0.2, -0.7, 2.1, 0.9, -1.4, 0.0, 1.1}
	for _, T := range []float64{0.5, 1, 2} {
		const n = 40000
		counts := draw(seeded(t, Params{Temperature: T}, 7), logits, n)
		stat, df := chiSquare(t, counts, softmax(logits, T), n)
		if stat > chi2Crit999[df] {
			t.Errorf("T=%v: chi-square %.1f > %.1f (df %d): counts %v", T, stat, chi2Crit999[df], df, counts)
		}
	}
}

func TestTopK(t *testing.T) {
	logits := []float32{1.5, 0.2, -0.7, 2.1, 0.9, -1.4, 0.0, 1.1}
	const n = 30000
	counts := draw(seeded(t, Params{Temperature: 1, TopK: 3}, 11), logits, n)
	// The three largest: ids 3, 0, 7; renormalised.
	p := softmax(logits, 1)
	want := make([]float64, len(p))
	keep := []int{3, 0, 7}
	var mass float64
	for _, i := range keep {
		mass += p[i]
	}
	for _, i := range keep {
		want[i] = p[i] / mass
	}
	stat, df := chiSquare(t, counts, want, n)
	if stat > chi2Crit999[df] {
		t.Errorf("chi-square %.1f > %.1f: %v", stat, chi2Crit999[df], counts)
	}
}

func TestTopPMassTruncation(t *testing.T) {
	// Probabilities 0.4, 0.3, 0.2, 0.1 (logits = ln p).
	probs := []float64{0.1, 0.4, 0.2, 0.3}
	logits := make([]float32, len(probs))
	for i, p := range probs {
		logits[i] = float32(math.Log(p))
	}
	cases := []struct {
		topP float64
		keep []int
	}{
		{0.35, []int{1}},          // 0.4 alone reaches 0.35
		{0.65, []int{1, 3}},       // 0.4 < 0.65 ≤ 0.7
		{0.85, []int{1, 3, 2}},    // 0.7 < 0.85 ≤ 0.9
		{0.95, []int{1, 3, 2, 0}}, // needs everything
	}
	for _, c := range cases {
		const n = 30000
		counts := draw(seeded(t, Params{Temperature: 1, TopP: c.topP}, 3), logits, n)
		want := make([]float64, len(probs))
		var mass float64
		for _, i := range c.keep {
			mass += probs[i]
		}
		for _, i := range c.keep {
			want[i] = probs[i] / mass
		}
		if len(c.keep) == 1 {
			if counts[c.keep[0]] != n {
				t.Errorf("top_p %v: counts %v, want only token %d", c.topP, counts, c.keep[0])
			}
			continue
		}
		stat, df := chiSquare(t, counts, want, n)
		if stat > chi2Crit999[df] {
			t.Errorf("top_p %v: chi-square %.1f > %.1f: %v", c.topP, stat, chi2Crit999[df], counts)
		}
	}
}

// On a vocabulary-sized input, the nucleus found without a full sort is
// the one a full sort gives.
func TestTopPLargeVocabMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 201088)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	const T, topP = 0.8, 0.9
	p := softmax(logits, T)
	ids := make([]int, len(p))
	for i := range ids {
		ids[i] = i
	}
	sort.Slice(ids, func(a, b int) bool { return p[ids[a]] > p[ids[b]] })
	nucleus := map[int32]bool{}
	var acc float64
	for _, id := range ids {
		nucleus[int32(id)] = true
		acc += p[id]
		if acc >= topP {
			break
		}
	}
	if len(nucleus) < 100 {
		t.Fatalf("test logits too peaked: nucleus of %d", len(nucleus))
	}
	s := seeded(t, Params{Temperature: T, TopP: topP}, 5)
	buf := make([]float32, len(logits))
	seen := map[int32]bool{}
	for range 300 {
		copy(buf, logits)
		id := s.Sample(buf)
		if !nucleus[id] {
			t.Fatalf("sampled %d (p=%.3g) outside the nucleus of %d tokens", id, p[id], len(nucleus))
		}
		seen[id] = true
	}
	// The draw covers the nucleus, not only its head.
	if len(seen) < 100 {
		t.Errorf("only %d distinct tokens of a nucleus of %d", len(seen), len(nucleus))
	}
}

func TestGreedyIsArgmax(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	s := seeded(t, Params{}, 0)
	for range 200 {
		logits := make([]float32, 1+r.IntN(5000))
		best := 0
		for i := range logits {
			logits[i] = float32(r.NormFloat64())
			if logits[i] > logits[best] {
				best = i
			}
		}
		if got := s.Sample(logits); got != int32(best) {
			t.Fatalf("greedy picked %d, argmax is %d", got, best)
		}
	}
	// First index on a tie; NaN never wins.
	if got := Argmax([]float32{1, 3, float32(math.NaN()), 3}); got != 1 {
		t.Errorf("Argmax tie/NaN = %d, want 1", got)
	}
	if got := Argmax([]float32{float32(math.NaN()), -1}); got != 1 {
		t.Errorf("Argmax with leading NaN = %d, want 1", got)
	}
}

func TestSeedDeterminism(t *testing.T) {
	logits := make([]float32, 500)
	r := rand.New(rand.NewPCG(4, 4))
	for i := range logits {
		logits[i] = float32(r.NormFloat64())
	}
	run := func(seed uint64) []int32 {
		s := seeded(t, Params{Temperature: 1, TopP: 0.95}, seed)
		out := make([]int32, 64)
		buf := make([]float32, len(logits))
		for i := range out {
			copy(buf, logits)
			out[i] = s.Sample(buf)
		}
		return out
	}
	a, b, c := run(42), run(42), run(43)
	same := func(x, y []int32) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed gave different tokens")
	}
	if same(a, c) {
		t.Error("different seeds gave the same 64 tokens")
	}
}

func TestPenalties(t *testing.T) {
	logits := []float32{1, 1}
	s := seeded(t, Params{Temperature: 1, FrequencyPenalty: 1, PresencePenalty: 0.5}, 1)
	s.Accept(0)
	s.Accept(0)
	// Token 0 loses 0.5 + 2·1 = 2.5: p0 = 1/(1+e^2.5).
	const n = 20000
	counts := draw(s, logits, n)
	want := []float64{1 / (1 + math.Exp(2.5)), 0}
	want[1] = 1 - want[0]
	stat, df := chiSquare(t, counts, want, n)
	if stat > chi2Crit999[df] {
		t.Errorf("chi-square %.1f: counts %v, want p %v", stat, counts, want)
	}
}

func TestValidate(t *testing.T) {
	for _, p := range []Params{{Temperature: -1}, {Temperature: math.NaN()}, {TopP: 1.5}, {TopP: -0.1}, {TopK: -1}, {PresencePenalty: 3}} {
		if _, err := New(p); err == nil {
			t.Errorf("New(%+v) accepted", p)
		}
	}
	if _, err := New(Params{Temperature: 1, TopP: 1, TopK: 40}); err != nil {
		t.Error(err)
	}
}

func TestStops(t *testing.T) {
	s := NewStops(200002, 200012)
	if !s.Has(200002) || !s.Has(200012) || s.Has(200007) {
		t.Errorf("stops %v", s)
	}
}

func BenchmarkTopPVocab(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 201088)
	for i := range logits {
		logits[i] = float32(r.NormFloat64() * 3)
	}
	seed := uint64(1)
	s, _ := New(Params{Temperature: 1, TopP: 0.9, Seed: &seed})
	for b.Loop() {
		s.Sample(logits)
	}
}

func TestExpNeg(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for range 100000 {
		x := -r.Float64() * 750
		want, got := math.Exp(x), expNeg(x)
		if want == 0 && got == 0 {
			continue
		}
		if want < 1e-300 { // subnormal range: only closeness to 0 matters
			if got > 1e-300 {
				t.Fatalf("expNeg(%v) = %v, want %v", x, got, want)
			}
			continue
		}
		if d := math.Abs(got-want) / want; d > 1e-9 {
			t.Fatalf("expNeg(%v) = %v, want %v (rel %.2g)", x, got, want, d)
		}
	}
	if expNeg(0) != 1 || expNeg(-800) != 0 {
		t.Errorf("expNeg(0) = %v, expNeg(-800) = %v", expNeg(0), expNeg(-800))
	}
}
