package cuda

import (
	"errors"
	"math"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/runtime"
	"github.com/gptoss/gptoss/runtime/cpu"
)

// These run everywhere (CI has no GPU): registration, the fallback when
// CUDA cannot run, and the host-side pieces of the engine.

func TestRegistered(t *testing.T) {
	e, ok := runtime.Lookup("cuda")
	if !ok {
		t.Fatal("the cuda engine is not registered")
	}
	if e.Name() != "cuda" {
		t.Fatalf("name %q", e.Name())
	}
}

// TestUnavailableFallsBack: with no driver library the engine says why, a
// named pick fails with ErrUnavailable, and auto picks the CPU engine.
func TestUnavailableFallsBack(t *testing.T) {
	if _, err := kernelImage(); err == nil && loadDriver() == nil {
		t.Skip("a CUDA driver and the kernels are here")
	}
	err := Engine{}.Available()
	if err == nil {
		t.Fatal("Available() = nil without a driver or kernels")
	}
	t.Logf("Available: %v", err)
	if _, perr := runtime.Pick("cuda", ""); !errors.Is(perr, runtime.ErrUnavailable) {
		t.Fatalf("Pick(cuda) = %v, want ErrUnavailable", perr)
	}
	e, perr := runtime.Pick("auto", "cuda")
	if perr != nil || e.Name() != "cpu" {
		t.Fatalf("Pick(auto) = %v, %v; want the cpu engine", e, perr)
	}
}

func TestMissingDriverLibrary(t *testing.T) {
	missing, err := bindLibrary("/nonexistent/libcuda.so.1", (&driver{}).symbols())
	if err == nil {
		t.Fatalf("binding a missing library succeeded (missing %v)", missing)
	}
}

func TestNoKernelsMessage(t *testing.T) {
	if _, err := kernelImage(); err != nil && !errors.Is(err, errNoKernels) {
		t.Fatalf("kernelImage: %v", err)
	}
}

func TestCheckConfig(t *testing.T) {
	good := convert.ModelConfig{NumHiddenLayers: 24, NumExperts: 32, ExpertsPerToken: 4, VocabSize: 201088,
		HiddenSize: 2880, IntermediateSize: 2880, HeadDim: 64, NumAttentionHeads: 64, NumKeyValueHeads: 8}
	if err := checkConfig(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*convert.ModelConfig){
		"head_dim 48":     func(c *convert.ModelConfig) { c.HeadDim = 48 },
		"hidden 2900":     func(c *convert.ModelConfig) { c.HiddenSize = 2900 },
		"heads 63":        func(c *convert.ModelConfig) { c.NumAttentionHeads = 63 },
		"experts 300":     func(c *convert.ModelConfig) { c.NumExperts = 300 },
		"top-9":           func(c *convert.ModelConfig) { c.ExpertsPerToken = 9 },
		"no vocabulary":   func(c *convert.ModelConfig) { c.VocabSize = 0 },
		"intermediate 40": func(c *convert.ModelConfig) { c.IntermediateSize = 40 },
	} {
		c := good
		mod(&c)
		if err := checkConfig(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRopeTablesMatchCPU: rotating with our tables (as the kernel does, in
// float32 with float64 sin/cos) gives the CPU engine's Rope.Apply.
func TestRopeTablesMatchCPU(t *testing.T) {
	c := convert.ModelConfig{HeadDim: 64, RopeTheta: 150000, RopeScalingFactor: 32, InitialContextLength: 4096,
		RopeNTKAlpha: 1, RopeNTKBeta: 32}
	inv, conc := ropeTables(c)
	if math.Abs(float64(conc)-1.3465736) > 1e-6 {
		t.Fatalf("concentration %v", conc)
	}
	r := cpu.NewRope(c, 1)
	for _, pos := range []int{0, 1, 77, 4095, 131071} {
		x := make([]float32, 64)
		for i := range x {
			x[i] = float32(i%7) - 3
		}
		want := append([]float32(nil), x...)
		r.Apply(want, 1, pos)
		for i := 0; i < 32; i++ {
			phi := float32(pos) * inv[i]
			cs, sn := float32(math.Cos(float64(phi)))*conc, float32(math.Sin(float64(phi)))*conc
			a, b := x[i], x[i+32]
			if g := a*cs - b*sn; g != want[i] {
				t.Fatalf("pos %d dim %d: %v, cpu %v", pos, i, g, want[i])
			}
			if g := b*cs + a*sn; g != want[i+32] {
				t.Fatalf("pos %d dim %d: %v, cpu %v", pos, i+32, g, want[i+32])
			}
		}
	}
}

func TestLaunchShapes(t *testing.T) {
	if attnSplits(1) < 8 || attnSplits(256) != 1 {
		t.Fatalf("splits %d for decode, %d for prefill", attnSplits(1), attnSplits(256))
	}
	// every tile plan fits the bound: E experts, n assignments
	for _, c := range []struct{ n, E, tile int }{{4, 32, 1}, {1024, 32, 8}, {1024, 128, 8}, {12, 8, 8}} {
		worst := 0
		// worst case: every expert gets a partial tile
		per := c.n / c.E
		for e := 0; e < c.E; e++ {
			k := per
			if e < c.n%c.E {
				k++
			}
			worst += ceilDiv(k, c.tile)
		}
		if worst > moeMaxTiles(c.n, c.E, c.tile) {
			t.Fatalf("%+v: %d tiles > bound %d", c, worst, moeMaxTiles(c.n, c.E, c.tile))
		}
	}
}

// TestDecVersion: GPTOSS_CUDA_DEC's names, and the default for anything
// else (v17 is opt-in until a GPU run measures it).
func TestDecVersion(t *testing.T) {
	for in, want := range map[string]int{"v3": 3, "v6": 6, "v7": 7, "v12": 12, "v17": 17, "": 16, "v16": 16, "v99": 16} {
		if got := decVersion(in); got != want {
			t.Errorf("decVersion(%q) = %d, want %d", in, got, want)
		}
	}
}
