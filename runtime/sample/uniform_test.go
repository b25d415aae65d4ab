package sample

import (
	"math/rand/v2"
	"testing"
)

// A sampler that hands its draw to another side (Uniform) and samples the
// same logits with it (SampleUniform) gives exactly the tokens of one that
// samples itself, token after token, for every kind of parameters; greedy
// parameters draw nothing.
func TestUniformMatchesSample(t *testing.T) {
	seed := uint64(7)
	r := rand.New(rand.NewPCG(1, 2))
	logits := make([]float32, 5000)
	for _, p := range []Params{
		{Temperature: 1, Seed: &seed},
		{Temperature: 0.7, TopP: 0.9, Seed: &seed},
		{Temperature: 1.3, TopK: 40, Seed: &seed},
		{Temperature: 1, TopK: 100, TopP: 0.5, Seed: &seed},
		{Temperature: 0, Seed: &seed},
	} {
		a, err := New(p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := New(p)
		differ := 0
		for i := 0; i < 300; i++ {
			for j := range logits {
				logits[j] = float32(r.NormFloat64() * 3)
			}
			u := b.Uniform()
			if p.Greedy() && u != 0 {
				t.Fatalf("%+v: greedy Uniform drew %v", p, u)
			}
			ta, tb := a.Sample(logits), b.SampleUniform(logits, u)
			if ta != tb {
				t.Fatalf("%+v token %d: Sample %d, SampleUniform %d", p, i, ta, tb)
			}
			if ta != Argmax(logits) {
				differ++
			}
		}
		if !p.Greedy() && differ == 0 {
			t.Errorf("%+v: every token was the argmax: the draw is not used", p)
		}
	}
}
