package chat

import (
	"context"
	"slices"
	"testing"

	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/sample"
)

// deviceModel wraps a model so its sequences are runtime.DeviceSamplers
// that sample the last logits with the caller's draw (as the CUDA engine
// does on the device), or decline every other call.
type deviceModel struct {
	runtime.Model
	decline bool
	calls   *int
}

func (m deviceModel) NewSequence(n int) (runtime.Sequence, error) {
	s, err := m.Model.NewSequence(n)
	return &deviceSeq{Sequence: s, m: m}, err
}

type deviceSeq struct {
	runtime.Sequence
	m    deviceModel
	last []float32
}

func (q *deviceSeq) Forward(ctx context.Context, toks []int32, all bool) ([]float32, error) {
	out, err := q.Sequence.Forward(ctx, toks, all)
	q.last = slices.Clone(out)
	return out, err
}

func (q *deviceSeq) SampleDevice(p sample.Params, u float64) (int32, bool, error) {
	*q.m.calls++
	if q.m.decline && *q.m.calls%2 == 0 {
		return 0, false, nil
	}
	s, err := sample.New(p)
	if err != nil {
		return 0, false, err
	}
	return s.SampleUniform(q.last, u), true, nil
}

// With a sequence that samples where its logits are, a seeded generation
// gives the tokens of host sampling, whether the device takes every draw,
// declines some, or is turned off with GPTOSS_DEVICE_SAMPLING=0.
func TestDeviceSampling(t *testing.T) {
	m := tinyModel(t)
	ctx := context.Background()
	prompt := []int32{5, 17, 300, 42, 7, 99}
	seed := uint64(3)
	p := sample.Params{Temperature: 1.5, TopP: 0.95, Seed: &seed}
	gen := func(model runtime.Model) []int32 {
		t.Helper()
		smp, err := sample.New(p)
		if err != nil {
			t.Fatal(err)
		}
		res, err := session(t, model, 64).Generate(ctx, Request{Prompt: prompt, MaxTokens: 12, Sampler: smp}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res.Tokens
	}
	host := gen(m)
	for _, c := range []struct {
		name    string
		decline bool
		off     bool
	}{{"device", false, false}, {"device-declines", true, false}, {"off", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			if c.off {
				t.Setenv("GPTOSS_DEVICE_SAMPLING", "0")
			}
			calls := 0
			got := gen(deviceModel{Model: m, decline: c.decline, calls: &calls})
			if !slices.Equal(got, host) {
				t.Errorf("tokens %v, host sampling %v", got, host)
			}
			if want := len(host); !c.off && calls != want || c.off && calls != 0 {
				t.Errorf("%d device draws for %d tokens", calls, len(host))
			}
		})
	}
}
