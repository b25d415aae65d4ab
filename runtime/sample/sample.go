package sample

import (
	"container/heap"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Params choose how tokens are drawn. The zero value is greedy decoding.
type Params struct {
	// Temperature divides the logits; 0 means greedy (argmax).
	Temperature float64
	// TopK keeps only the k most likely tokens (0: all).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability
	// mass reaches TopP (0 or 1: all).
	TopP float64
	// Seed makes sampling deterministic; nil seeds from crypto/rand.
	Seed *uint64
	// PresencePenalty is subtracted once from the logit of every token
	// already generated; FrequencyPenalty once per occurrence (OpenAI's
	// definitions, each in [-2, 2]).
	PresencePenalty, FrequencyPenalty float64
}

// Validate reports the first parameter out of range, naming it as the
// OpenAI API does (temperature, top_p, top_k, …).
func (p Params) Validate() error {
	switch {
	case math.IsNaN(p.Temperature) || p.Temperature < 0 || p.Temperature > 100:
		return fmt.Errorf("temperature %v: want 0 (greedy) … 100", p.Temperature)
	case math.IsNaN(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return fmt.Errorf("top_p %v: want a number in (0, 1]", p.TopP)
	case p.TopK < 0:
		return fmt.Errorf("top_k %d: want ≥ 0 (0: no limit)", p.TopK)
	case math.IsNaN(p.PresencePenalty) || p.PresencePenalty < -2 || p.PresencePenalty > 2:
		return fmt.Errorf("presence_penalty %v: want a number in [-2, 2]", p.PresencePenalty)
	case math.IsNaN(p.FrequencyPenalty) || p.FrequencyPenalty < -2 || p.FrequencyPenalty > 2:
		return fmt.Errorf("frequency_penalty %v: want a number in [-2, 2]", p.FrequencyPenalty)
	}
	return nil
}

// Greedy reports whether the params pick the argmax.
func (p Params) Greedy() bool { return p.Temperature == 0 }

// Sampler draws tokens. It is not safe for concurrent use; make one per
// generation.
type Sampler struct {
	p      Params
	rng    *rand.Rand
	counts map[int32]int // generated tokens, for the penalties
	probs  []float64
	cand   []cand
}

type cand struct {
	id int32
	p  float64
}

// New makes a sampler, or says which parameter is out of range.
func New(p Params) (*Sampler, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var seed uint64
	if p.Seed != nil {
		seed = *p.Seed
	} else {
		var b [8]byte
		crand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}, nil
}

// Params returns the sampler's parameters.
func (s *Sampler) Params() Params { return s.p }

// Accept records a generated token for the presence and frequency
// penalties. The generation loop calls it for every token it emits.
func (s *Sampler) Accept(id int32) {
	if s.p.PresencePenalty == 0 && s.p.FrequencyPenalty == 0 {
		return
	}
	if s.counts == nil {
		s.counts = map[int32]int{}
	}
	s.counts[id]++
}

// Sample returns the next token for logits (one position, vocab_size
// floats). It modifies logits in place only when penalties are set.
func (s *Sampler) Sample(logits []float32) int32 {
	return s.sample(logits, -1)
}

// Uniform draws the number in [0, 1) that the next non-greedy Sample would
// draw, for a sampler elsewhere (the CUDA engine's, on the device) to use
// with the same rule: a seeded generation then gives the same tokens
// whichever side samples. Greedy parameters draw nothing (it returns 0).
func (s *Sampler) Uniform() float64 {
	if s.p.Greedy() {
		return 0
	}
	return s.rng.Float64()
}

// SampleUniform is Sample with the uniform draw u from Uniform (for when
// the device declined to sample): it draws nothing itself.
func (s *Sampler) SampleUniform(logits []float32, u float64) int32 {
	return s.sample(logits, u)
}

// sample is Sample; u0 < 0 draws from the sampler's generator.
func (s *Sampler) sample(logits []float32, u0 float64) int32 {
	if len(logits) == 0 {
		return 0
	}
	for id, n := range s.counts {
		if int(id) < len(logits) && id >= 0 {
			logits[id] -= float32(s.p.PresencePenalty + s.p.FrequencyPenalty*float64(n))
		}
	}
	if s.p.Greedy() {
		return Argmax(logits)
	}
	// softmax(logits / T), max subtracted.
	best := Argmax(logits)
	mx := float64(logits[best])
	if math.IsNaN(mx) || math.IsInf(mx, -1) {
		return best
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float64, len(logits))
	}
	probs := s.probs[:len(logits)]
	invT := 1 / s.p.Temperature
	var sum float64
	for i, l := range logits {
		v := float64(l)
		if math.IsNaN(v) {
			probs[i] = 0
			continue
		}
		e := expNeg((v - mx) * invT)
		probs[i] = e
		sum += e
	}
	topP := s.p.TopP
	if topP == 0 {
		topP = 1
	}
	k := s.p.TopK
	if k >= len(logits) {
		k = 0
	}
	if k == 0 && topP >= 1 {
		return s.draw(probs, sum, s.pick(u0))
	}
	var c []cand
	if k > 0 {
		c = s.topK(probs, k)
	} else {
		c = s.aboveMass(probs, sum, topP)
	}
	sortCands(c)
	// The nucleus is taken of the whole distribution, or of the top k
	// renormalised.
	ref := sum
	if k > 0 {
		ref = 0
		for _, x := range c {
			ref += x.p
		}
	}
	if topP < 1 {
		var acc float64
		for i, x := range c {
			acc += x.p
			if acc >= topP*ref {
				c = c[:i+1]
				break
			}
		}
	}
	var mass float64
	for _, x := range c {
		mass += x.p
	}
	u := s.pick(u0) * mass
	for _, x := range c {
		u -= x.p
		if u < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// pick is u0, or a fresh draw when u0 < 0.
func (s *Sampler) pick(u0 float64) float64 {
	if u0 >= 0 {
		return u0
	}
	return s.rng.Float64()
}

// draw samples an index from unnormalised weights summing to sum, with the
// uniform draw u01 in [0, 1).
func (s *Sampler) draw(probs []float64, sum, u01 float64) int32 {
	u := u01 * sum
	last := int32(0)
	for i, p := range probs {
		if p == 0 {
			continue
		}
		last = int32(i)
		u -= p
		if u < 0 {
			return int32(i)
		}
	}
	return last // rounding: the last token with any mass
}

// aboveMass returns the tokens whose probability is at least 2^-b, for
// the smallest b at which their mass reaches topP of sum: the nucleus is a
// prefix of this set in descending order. One pass buckets the weights by
// binary exponent (each weight is ≤ 1, the max's), a second collects the
// tokens of the buckets needed.
func (s *Sampler) aboveMass(probs []float64, sum, topP float64) []cand {
	const buckets = 128
	var mass [buckets]float64
	for _, p := range probs {
		mass[bucket(p)] += p
	}
	b, acc := 0, 0.0
	for ; b < buckets-1; b++ {
		acc += mass[b]
		if acc >= topP*sum {
			break
		}
	}
	c := s.cand[:0]
	for i, p := range probs {
		if p > 0 && bucket(p) <= b {
			c = append(c, cand{int32(i), p})
		}
	}
	s.cand = c
	return c
}

// bucket is -floor(log2 p) for p in (0, 1], capped at 127 (0 and
// subnormals go to the last bucket).
func bucket(p float64) int {
	e := int(math.Float64bits(p)>>52) & 0x7ff
	return min(max(1023-e, 0), 127)
}

// expNeg is e^x for x ≤ 0 to about 1e-10 relative error, several times
// faster than math.Exp: e^x = 2^k · e^r with |r| ≤ ln2/2 and a degree-9
// Taylor polynomial for e^r. Sampling over 201,088 logits is dominated by
// this.
func expNeg(x float64) float64 {
	if x < -708 {
		return 0
	}
	const ln2hi, ln2lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
	k := math.Floor(x*math.Log2E + 0.5)
	r := (x - k*ln2hi) - k*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040+r*(1.0/40320+r*(1.0/362880)))))))))
	return p * math.Float64frombits(uint64(int64(k)+1023)<<52)
}

// topK returns the k most probable tokens (lower id first on ties).
func (s *Sampler) topK(probs []float64, k int) []cand {
	h := candHeap(s.cand[:0])
	for i, p := range probs {
		c := cand{int32(i), p}
		if len(h) < k {
			heap.Push(&h, c)
		} else if better(c, h[0]) {
			h[0] = c
			heap.Fix(&h, 0)
		}
	}
	s.cand = h
	return h
}

// better orders candidates: higher probability first, then lower id.
func better(a, b cand) bool {
	if a.p != b.p {
		return a.p > b.p
	}
	return a.id < b.id
}

func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
		if better(a, b) {
			return -1
		}
		if better(b, a) {
			return 1
		}
		return 0
	})
}

// candHeap is a min-heap by `better`: the root is the worst kept candidate.
type candHeap []cand

func (h candHeap) Len() int           { return len(h) }
func (h candHeap) Less(i, j int) bool { return better(h[j], h[i]) }
func (h candHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)        { *h = append(*h, x.(cand)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Argmax returns the index of the largest logit, the first on a tie; NaNs
// are skipped (0 when every logit is NaN).
func Argmax(logits []float32) int32 {
	best := -1
	for i, l := range logits {
		if l != l { // NaN
			continue
		}
		if best < 0 || l > logits[best] {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	return int32(best)
}

// Stops is a set of stop token ids.
type Stops map[int32]bool

// NewStops makes a set from ids.
func NewStops(ids ...int32) Stops {
	s := Stops{}
	for _, id := range ids {
		s[id] = true
	}
	return s
}

// Has reports whether id stops generation.
func (s Stops) Has(id int32) bool { return s[id] }
