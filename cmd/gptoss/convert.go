package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
)

func newConvertCmd(g *globalOptions) *cobra.Command {
	var format, to, out string
	c := &cobra.Command{
		Use:   "convert MODEL",
		Short: "Convert a cached gpt-oss model to the GPU-ready layout (done once; pull does it by default)",
		Long: `Convert a cached gpt-oss model into gptoss's GPU-ready layout: one file,
tensors layer-major and page/huge-page aligned, MXFP4 experts kept 4-bit,
q/k/v fused, with a checksum per tensor. The layout is stored in the cache
as a content-addressed blob, recorded against the model's manifest, so it is
made once: a second run prints the same path. It is removed with the model
(gptoss rm). Prints the layout file's path.

With --to gguf it writes one GGUF file instead (-o FILE), in llama.cpp's
gpt-oss layout with MXFP4 experts (ggml type 39), for llama.cpp and ollama.`,
		Example: `  gptoss convert 20b
  gptoss convert 120b --format original
  gptoss convert 20b --to gguf -o gpt-oss-20b.gguf`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch to {
			case "gguf":
				return runGGUFExport(cmd, g, args[0], format, out)
			case "", "layout":
				if out != "" {
					return usageError{fmt.Errorf("-o is for --to gguf; the GPU layout lives in the cache")}
				}
			default:
				return usageError{fmt.Errorf("--to %q: want layout (default) or gguf", to)}
			}
			store, es, err := g.cached(args[0], format)
			if err != nil {
				return err
			}
			e := es[0]
			start := time.Now()
			res, err := convertEntry(cmd.Context(), store, e)
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "converted", "name": e.Manifest.Name,
					"format": e.Manifest.Format, "path": res.path, "sha256": res.sha256, "size": res.size,
					"version": convert.LayoutVersion, "cached": res.already, "seconds": time.Since(start).Seconds()})
			}
			if !g.quiet {
				reportConverted(cmd.ErrOrStderr(), e, res, time.Since(start))
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.path)
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "which cached format to convert: hf or original (default: the newest)")
	c.Flags().StringVar(&to, "to", "", "layout (default: the GPU-ready layout in the cache) or gguf")
	c.Flags().StringVarP(&out, "output", "o", "", "with --to gguf: the file to write (default ./<model>.gguf)")
	return c
}

func reportConverted(w io.Writer, e cache.Entry, res *convertResult, took time.Duration) {
	m := e.Manifest
	if res.already {
		fmt.Fprintf(w, "%s (%s) @ %s: already converted (layout v%d, %s)\n", m.Name, m.Format, short(m.Revision), convert.LayoutVersion, human(res.size))
		return
	}
	how := took.Round(time.Millisecond).String()
	if s := took.Seconds(); s > 0 {
		how += fmt.Sprintf(", %s/s", human(int64(float64(res.size)/s)))
	}
	fmt.Fprintf(w, "converted %s (%s) @ %s to layout v%d: %s in %s\n", m.Name, m.Format, short(m.Revision), convert.LayoutVersion, human(res.size), how)
}

type convertResult struct {
	path, sha256 string
	size         int64
	already      bool
}

// errNotGPTOSS means a cached model is not a complete gpt-oss checkpoint
// (another architecture, a metal/ or partial file set): there is nothing to
// convert.
var errNotGPTOSS = errors.New("not a gpt-oss safetensors checkpoint")

// convertSource finds the checkpoint directory and config of an entry: the
// HF files (config.json with model_type gpt_oss) or original/.
func convertSource(store *cache.Store, e cache.Entry) (dir string, config []byte, err error) {
	m := e.Manifest
	snap := store.SnapshotDir(m)
	for _, sub := range []string{"", "original/"} {
		if _, ok := m.Lookup(sub + "config.json"); !ok {
			continue
		}
		shards := false
		for _, f := range m.Files {
			if strings.HasPrefix(f.Path, sub) && !strings.Contains(f.Path[len(sub):], "/") && strings.HasSuffix(f.Path, ".safetensors") {
				shards = true
			}
		}
		if !shards {
			continue
		}
		b, err := os.ReadFile(filepath.Join(snap, filepath.FromSlash(sub+"config.json")))
		if err != nil {
			return "", nil, err
		}
		if _, err := convert.ParseModelConfig(b); err != nil {
			return "", nil, fmt.Errorf("%s: %w (%v)", m.Name, errNotGPTOSS, err)
		}
		return filepath.Join(snap, filepath.FromSlash(sub)), b, nil
	}
	return "", nil, fmt.Errorf("%s (%s): %w: no config.json with safetensors weights", m.Name, m.Format, errNotGPTOSS)
}

// convertEntry returns the entry's layout, writing it first unless the cache
// already has it. The layout is written to a temp file under partial/,
// hashed while written, published as a blob and recorded against the entry.
func convertEntry(ctx context.Context, store *cache.Store, e cache.Entry) (*convertResult, error) {
	have := func() (*convertResult, bool) {
		if h, ok := store.Converted(e.Digest, convert.LayoutVersion); ok {
			fi, err := os.Stat(store.BlobPath(h))
			if err == nil {
				return &convertResult{path: store.BlobPath(h), sha256: h, size: fi.Size(), already: true}, true
			}
		}
		return nil, false
	}
	if r, ok := have(); ok {
		return r, nil
	}
	dir, cfg, err := convertSource(store, e)
	if err != nil {
		return nil, err
	}
	// One conversion of a model at a time; GC waits (as for a pull) until
	// the layout is recorded.
	unlock, err := store.Lock(ctx, "convert-"+e.Digest[:32])
	if err != nil {
		return nil, err
	}
	defer unlock()
	if r, ok := have(); ok {
		return r, nil
	}
	release, err := store.HoldForPull(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ckpt, err := convert.OpenCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	var need int64
	for _, f := range ckpt.Files {
		for _, t := range f.Tensors {
			need += t.Size
		}
	}
	if free, err := store.Free(); err == nil && free < need+64<<20 {
		return nil, fmt.Errorf("%w: converting %s needs about %s, %s free in %s", cache.ErrNoSpace, e.Manifest.Name, human(need), human(free), store.Root)
	}
	tmp, err := os.CreateTemp(filepath.Join(store.Root, "partial"), "layout-*.tmp")
	if err != nil {
		return nil, err
	}
	sum, err := convert.WriteLayout(tmp, ckpt, cfg, "sha256:"+e.Digest)
	var size int64
	if err == nil {
		size, err = tmp.Seek(0, io.SeekCurrent)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = store.Publish(tmp.Name(), sum)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("convert %s: %w", e.Manifest.Name, err)
	}
	if err := store.SetConverted(e.Digest, convert.LayoutVersion, sum, size); err != nil {
		return nil, err
	}
	return &convertResult{path: store.BlobPath(sum), sha256: sum, size: size}, nil
}

// convertAfterPull converts a freshly pulled gpt-oss model. A model that is
// not a complete gpt-oss checkpoint is skipped silently; a failed
// conversion is a warning (the download itself succeeded).
func convertAfterPull(cmd *cobra.Command, g *globalOptions, store *cache.Store, e cache.Entry) {
	start := time.Now()
	res, err := convertEntry(cmd.Context(), store, e)
	if errors.Is(err, errNotGPTOSS) {
		return
	}
	if err != nil && g.json {
		json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "warning", "message": "not converted to the GPU-ready layout: " + err.Error()})
		return
	}
	if err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "gptoss: warning: not converted to the GPU-ready layout: %v (retry: gptoss convert %s)\n", err, e.Manifest.Name)
		return
	}
	if g.json {
		json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "converted", "name": e.Manifest.Name,
			"format": e.Manifest.Format, "path": res.path, "sha256": res.sha256, "size": res.size,
			"version": convert.LayoutVersion, "cached": res.already, "seconds": time.Since(start).Seconds()})
		return
	}
	if !g.quiet {
		reportConverted(cmd.ErrOrStderr(), e, res, time.Since(start))
	}
}
