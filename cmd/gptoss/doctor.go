package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/runtime/hw"
)

func newDoctorCmd(g *globalOptions) *cobra.Command {
	var tokens int
	c := &cobra.Command{
		Use:   "doctor [MODEL]",
		Short: "Show this machine's GPUs, CPU, memory and disk, and whether each model fits",
		Long: `Show what this machine has — NVIDIA GPUs (compute capability, memory, driver,
PCIe, MIG), the CUDA driver, the CPU (AVX2, AVX-512, AMX), memory (cgroup limits
included) and free disk under the cache — then, for each catalog model (or
MODEL: 20b, 120b, or a cached model with a config.json), where it would run:

  fits on GPU 0 (…)              the CUDA engine, on the GPU with most free memory
  CPU only: will run slowly (…)  no usable GPU has room; the CPU engine
  does not fit: …                neither

and the largest context that fits there. The CUDA engine needs compute
capability 8.0 or newer and a CUDA 12.0 or newer driver; a model runs on one
GPU (not split across several) for now. It is a report: the exit status is 0
even when nothing fits.`,
		Example: `  gptoss doctor
  gptoss doctor 120b --context 32768
  gptoss doctor --json | jq '.plans[] | {model, engine, maxContext}'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MaximumNArgs(1)(cmd, args); err != nil {
				return usageError{err}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokens < 0 {
				return usageError{fmt.Errorf("--context must be 0 (the model's maximum) or more")}
			}
			return runDoctor(cmd, g, args, tokens)
		},
	}
	c.Flags().IntVar(&tokens, "context", 0, "plan for this many tokens of context (default and at most: the model's maximum, 131072 for gpt-oss)")
	return c
}

// cacheRoot is the cache directory, without creating it.
func (g *globalOptions) cacheRoot() (string, error) {
	root := g.home
	if root == "" {
		var err error
		if root, err = cache.DefaultRoot(); err != nil {
			return "", err
		}
	}
	return filepath.Abs(root)
}

// tuneDir is where engines keep what they measured on this machine
// (<cache>/tune; "" when there is no cache root: they measure every load).
func (g *globalOptions) tuneDir() string {
	root, err := g.cacheRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "tune")
}

func runDoctor(cmd *cobra.Command, g *globalOptions, args []string, tokens int) error {
	root, err := g.cacheRoot()
	if err != nil {
		return err
	}
	var specs []hw.ModelSpec
	if len(args) == 1 {
		s, err := doctorSpec(g, root, args[0])
		if err != nil {
			return err
		}
		specs = append(specs, s)
	} else {
		for _, m := range registry.Catalog() {
			if s, ok := catalogSpec(m); ok {
				specs = append(specs, s)
			}
		}
	}
	m := hw.Detect(hw.Options{DiskPath: root})
	plans := []hw.Plan{}
	for _, s := range specs {
		plans = append(plans, hw.PlanFit(s, m, tokens))
	}
	out := cmd.OutOrStdout()
	if g.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"machine": m, "plans": plans})
	}
	if !g.quiet {
		printMachine(out, m, root)
		fmt.Fprintln(out)
	}
	for _, p := range plans {
		printPlan(out, m, p, g.quiet)
	}
	return nil
}

// catalogSpec is the planner's spec of a catalog model, with the catalog's
// weight size.
func catalogSpec(m *registry.Model) (hw.ModelSpec, bool) {
	s, ok := hw.SpecFor(m.Name)
	if ok && m.WeightsBytes > 0 {
		s.WeightsBytes = m.WeightsBytes
	}
	return s, ok
}

// doctorSpec sizes the model an argument names: a catalog model from the
// built-in table, anything else from the config.json of its cached snapshot.
func doctorSpec(g *globalOptions, root, arg string) (hw.ModelSpec, error) {
	ref, err := registry.Parse(arg)
	if err != nil {
		return hw.ModelSpec{}, err
	}
	if ref.Model != nil {
		if s, ok := catalogSpec(ref.Model); ok {
			return s, nil
		}
	}
	if _, err := os.Stat(root); err != nil {
		return hw.ModelSpec{}, fmt.Errorf("%s is neither 20b, 120b nor in the cache (%s): %w", arg, root, registry.ErrNotFound)
	}
	store, es, err := g.cached(arg, "")
	if err != nil {
		return hw.ModelSpec{}, err
	}
	for _, e := range es {
		dir := store.SnapshotDir(e.Manifest)
		for _, name := range []string{"config.json", "original/config.json"} {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil {
				continue
			}
			// The weights beside the config: model-*.safetensors for the
			// HF layout, original/*.safetensors for OpenAI's.
			var weights int64
			for _, f := range e.Manifest.Files {
				if strings.HasSuffix(f.Path, ".safetensors") && path.Dir(f.Path) == path.Dir(name) {
					weights += f.Size
				}
			}
			return hw.SpecFromConfig(e.Manifest.Name, b, weights)
		}
	}
	return hw.ModelSpec{}, fmt.Errorf("%w: %s has no config.json in the cache, so its memory needs are unknown", registry.ErrUnsupported, arg)
}

func printMachine(w io.Writer, m *hw.Machine, root string) {
	if len(m.GPUs) == 0 {
		why := m.GPUError
		if why == "" {
			why = "NVML lists none"
		}
		fmt.Fprintf(w, "GPUs:    no NVIDIA GPU (%s)\n", why)
	} else {
		fmt.Fprintln(w, "GPUs:")
		for _, g := range m.GPUs {
			label := fmt.Sprintf("GPU %d", g.Index)
			if g.MIGInstance {
				label = fmt.Sprintf("  MIG slice of GPU %d", g.Index)
			}
			var parts []string
			if g.Name != "" {
				parts = append(parts, g.Name)
			}
			if g.ComputeMajor > 0 {
				parts = append(parts, fmt.Sprintf("compute capability %d.%d", g.ComputeMajor, g.ComputeMinor))
			}
			if g.MemoryTotal > 0 {
				parts = append(parts, fmt.Sprintf("%s (%s free)", hw.GB(g.MemoryTotal), hw.GB(g.MemoryFree)))
			}
			if g.PCIeGen > 0 {
				parts = append(parts, fmt.Sprintf("PCIe gen%d x%d", g.PCIeGen, g.PCIeWidth))
			}
			if g.MIGEnabled && !g.MIGInstance {
				parts = append(parts, "MIG mode on")
			}
			if g.Error != "" {
				parts = append(parts, "error: "+g.Error)
			}
			fmt.Fprintf(w, "  %s: %s\n", label, strings.Join(parts, ", "))
		}
		driver := "NVIDIA " + m.DriverVersion
		if m.DriverVersion == "" {
			driver = "NVIDIA (version unknown)"
		}
		if m.CUDADriverVersion > 0 {
			driver += fmt.Sprintf(", CUDA %d.%d", m.CUDADriverVersion/1000, m.CUDADriverVersion%1000/10)
		} else {
			why := strings.TrimPrefix(m.GPUError, "CUDA driver: ")
			if why == "" {
				why = "libcuda.so.1 could not be loaded"
			}
			driver += ", no CUDA driver (" + why + ")"
		}
		fmt.Fprintf(w, "Driver:  %s\n", driver)
	}
	c := m.CPU
	cpu := c.Model
	if cpu == "" {
		cpu = "unknown model"
	}
	yes := map[bool]string{true: "yes", false: "no"}
	fmt.Fprintf(w, "CPU:     %s, %d cores / %d threads, AVX2 %s, AVX-512 %s, AMX %s\n",
		cpu, c.Cores, c.Threads, yes[c.AVX2], yes[c.AVX512], yes[c.AMX])
	mem := fmt.Sprintf("%s total, %s available", hw.GB(m.Memory.Total), hw.GB(m.Memory.Available))
	if m.Memory.CgroupLimit > 0 {
		mem += fmt.Sprintf(" (cgroup limit %s, %s in use)", hw.GB(m.Memory.CgroupLimit), hw.GB(m.Memory.CgroupUsage))
	}
	fmt.Fprintf(w, "RAM:     %s\n", mem)
	if m.Disk.Total > 0 {
		fmt.Fprintf(w, "Disk:    %s free of %s under %s\n", hw.GB(m.Disk.Free), hw.GB(m.Disk.Total), root)
	} else {
		fmt.Fprintf(w, "Disk:    unknown under %s\n", root)
	}
}

func printPlan(w io.Writer, m *hw.Machine, p hw.Plan, quiet bool) {
	fmt.Fprintf(w, "%s: %s\n", p.Model, p.Summary)
	if quiet {
		return
	}
	if p.Engine != hw.EngineNone {
		where := "the CPU"
		if p.Engine == hw.EngineCUDA {
			for _, f := range p.Options {
				if f.Engine == hw.EngineCUDA && f.GPU == p.GPU && f.UUID == p.UUID {
					where = f.Device
					break
				}
			}
		}
		fmt.Fprintf(w, "  max context: %d tokens on %s\n", p.MaxContext, where)
	}
	if len(m.GPUs) > 0 { // without GPUs the machine section said why
		for _, r := range p.Reasons {
			fmt.Fprintf(w, "  not used: %s\n", r)
		}
	}
}

// fitCheck is the pull preflight: before a catalog model is downloaded,
// say where it would run here, and refuse (exit 9) when it would not run at
// all, unless forced. It runs after the source resolved the reference, so
// an unreachable source still fails as such (and offline pulls, which never
// resolve, skip it).
type fitCheck struct {
	registry.Source
	check func() error
	once  sync.Once
	err   error
}

func (f *fitCheck) Resolve(ctx context.Context, ref registry.Ref) (*registry.Manifest, error) {
	m, err := f.Source.Resolve(ctx, ref)
	if err != nil {
		return m, err
	}
	f.once.Do(func() { f.err = f.check() })
	if f.err != nil {
		return nil, f.err
	}
	return m, nil
}

// describedFitCheck keeps the wrapped source's Describe.
type describedFitCheck struct {
	*fitCheck
	d registry.Describer
}

func (d describedFitCheck) Describe() string { return d.d.Describe() }

// withFitCheck wraps src with the preflight when it applies: a catalog
// model, the whole model (no --include), not already in the cache.
func withFitCheck(cmd *cobra.Command, g *globalOptions, o *pullOptions, src registry.Source, ref registry.Ref, store *cache.Store) registry.Source {
	if ref.Model == nil || o.offline || len(ref.Include) > 0 {
		return src
	}
	spec, ok := catalogSpec(ref.Model)
	if !ok {
		return src
	}
	format := ref.Format
	if format == "" {
		format = ref.Model.DefaultFormat
	}
	requested := ref.Revision
	if requested == "" {
		requested = "main"
	}
	if _, err := store.Find(ref.Name(), format, requested); err == nil {
		return src // cached: it was pulled (or forced) before
	}
	check := func() error {
		p := hw.PlanFit(spec, hw.Detect(hw.Options{DiskPath: store.Root}), 0)
		refuse := p.Engine == hw.EngineNone && !o.force
		switch {
		case g.json:
			json.NewEncoder(cmd.OutOrStdout()).Encode(struct {
				Event string `json:"event"`
				hw.Plan
			}{"fit", p})
		case !g.quiet && !refuse:
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", p.Model, p.Summary)
		}
		if refuse {
			return &registry.Permanent{Err: &codeError{exitNoFit, fmt.Errorf("%s would not run on this machine (%s); use --force to download anyway, e.g. for mirroring",
				p.Model, p.Summary)}}
		}
		return nil
	}
	f := &fitCheck{Source: src, check: check}
	if d, ok := src.(registry.Describer); ok {
		return describedFitCheck{f, d}
	}
	return f
}
