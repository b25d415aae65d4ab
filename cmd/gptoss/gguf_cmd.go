package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/convert"
)

// newGGUFCmd is the hidden `export-gguf MODEL -o FILE` command (the user
// facing spelling is `gptoss convert MODEL --to gguf -o FILE`).
func newGGUFCmd(g *globalOptions) *cobra.Command {
	var out, format string
	c := &cobra.Command{
		Use:    "export-gguf MODEL",
		Short:  "Write a cached Hugging Face gpt-oss checkpoint as one GGUF file (llama.cpp's gpt-oss layout)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runGGUFExport(cmd, g, args[0], format, out)
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "the GGUF file to write (default ./<model>.gguf)")
	c.Flags().StringVar(&format, "format", "", "the cached format to read (only hf can be exported)")
	return c
}

// runGGUFExport finds MODEL's Hugging Face snapshot in the cache and writes
// it to out as GGUF, atomically: a temp file next to out, synced, then
// renamed over it, so out is either absent, the old file, or complete.
// format is the cached source format ("" or "hf"); out "" means
// ./<model name>.gguf.
func runGGUFExport(cmd *cobra.Command, g *globalOptions, model, format, out string) error {
	if format != "" && format != "hf" {
		return usageError{fmt.Errorf("GGUF export reads the Hugging Face layout (format hf), not %q", format)}
	}
	store, es, err := g.cached(model, "hf")
	if err != nil {
		return err
	}
	m := es[0].Manifest
	dir := store.SnapshotDir(m)
	if out == "" {
		out = path.Base(m.Name) + ".gguf"
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	start := time.Now()
	size, err := writeGGUFFile(ctx, dir, out, path.Base(m.Name))
	if err != nil {
		return err
	}
	return reportGGUF(cmd, g, m.Name, m.Revision, out, size, time.Since(start))
}

func reportGGUF(cmd *cobra.Command, g *globalOptions, name, rev, out string, size int64, took time.Duration) error {
	if g.json {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
			"event": "done", "name": name, "revision": rev, "format": "gguf", "path": out, "size": size,
		})
	}
	if g.quiet {
		fmt.Fprintln(cmd.OutOrStdout(), out)
		return nil
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, GGUF gpt-oss) from %s @ %s in %s\n", out, human(size), name, short(rev), took.Round(time.Millisecond))
	return nil
}

// writeGGUFFile exports dir to out through a temp file in out's directory.
func writeGGUFFile(ctx context.Context, dir, out, name string) (size int64, err error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(&ctxWriter{ctx: ctx, w: f}, 4<<20)
	if err = convert.WriteGGUF(bw, dir, convert.GGUFOptions{Name: name}); err != nil {
		return 0, err
	}
	if err = bw.Flush(); err != nil {
		return 0, err
	}
	if err = f.Chmod(0o644); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if err = f.Close(); err != nil {
		return 0, err
	}
	if err = os.Rename(tmp, out); err != nil {
		return 0, err
	}
	if d, derr := os.Open(filepath.Dir(out)); derr == nil {
		d.Sync()
		d.Close()
	}
	return fi.Size(), nil
}

// ctxWriter fails writes once ctx is done, so Ctrl-C stops an export.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}
