package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/registry"
)

// cached opens the cache and returns the entries arg names (matchEntries).
func (g *globalOptions) cached(arg, format string) (*cache.Store, []cache.Entry, error) {
	store, err := g.store()
	if err != nil {
		return nil, nil, err
	}
	es, err := matchEntries(store, arg, format)
	return store, es, err
}

// matchEntries returns the cached entries an argument names: same model
// name, the --format if given, the revision if the argument pins one.
func matchEntries(store *cache.Store, arg, format string) ([]cache.Entry, error) {
	ref, err := registry.Parse(arg)
	if err != nil {
		return nil, err
	}
	all, err := store.List()
	if err != nil {
		return nil, err
	}
	var out []cache.Entry
	for _, e := range all {
		m := e.Manifest
		if m.Name != ref.Name() || (format != "" && m.Format != format) {
			continue
		}
		if r := ref.Revision; r != "" && r != e.Requested && !(len(r) >= 7 && len(m.Revision) >= len(r) && m.Revision[:len(r)] == r) {
			continue
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s is not in the cache (%s); pull it first: %w", arg, store.Root, registry.ErrNotFound)
	}
	return out, nil
}

// newestPerFormat keeps the newest entry of each name and format (entries
// come newest first): what export and mirror carry, one per tag.
func newestPerFormat(es []cache.Entry) []cache.Entry {
	var pick []cache.Entry
	seen := map[string]bool{}
	for _, e := range es {
		k := e.Manifest.Name + ":" + e.Manifest.Format
		if !seen[k] {
			seen[k] = true
			pick = append(pick, e)
		}
	}
	return pick
}

func newListCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the models in the cache",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			all, err := store.List()
			if err != nil {
				return err
			}
			if g.json {
				type row struct {
					Name      string `json:"name"`
					Format    string `json:"format"`
					Revision  string `json:"revision"`
					Requested string `json:"requested,omitempty"`
					Files     int    `json:"files"`
					Size      int64  `json:"size"`
					Path      string `json:"path"`
					Manifest  string `json:"manifest"`
					Created   string `json:"created"`
					Converted string `json:"converted,omitempty"` // the GPU-ready layout file, if made
				}
				rows := []row{}
				for _, e := range all {
					m := e.Manifest
					layout := ""
					if h, ok := store.Converted(e.Digest, convert.LayoutVersion); ok {
						layout = store.BlobPath(h)
					}
					rows = append(rows, row{m.Name, m.Format, m.Revision, e.Requested, len(m.Files), m.TotalSize(),
						store.SnapshotDir(m), "sha256:" + e.Digest, e.Created.Format(time.RFC3339), layout})
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tFORMAT\tREVISION\tFILES\tSIZE\tPULLED\tCONVERTED")
			for _, e := range all {
				m := e.Manifest
				rev := short(m.Revision)
				if e.Requested != "" && e.Requested != m.Revision {
					rev += " (" + e.Requested + ")"
				}
				conv := "no"
				if _, ok := store.Converted(e.Digest, convert.LayoutVersion); ok {
					conv = fmt.Sprintf("v%d", convert.LayoutVersion)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, m.Format, rev, len(m.Files), human(m.TotalSize()), e.Created.Local().Format("2006-01-02 15:04"), conv)
			}
			return w.Flush()
		},
	}
}

func newPathCmd(g *globalOptions) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "path MODEL",
		Short: "Print the snapshot directory of a cached model (plain files vLLM/transformers can load)",
		Example: `  vllm serve "$(gptoss path 20b)"
  ls "$(gptoss path 20b@main)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, es, err := g.cached(args[0], format)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), store.SnapshotDir(es[0].Manifest))
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "only this format (hf, original, metal)")
	return c
}

func newRmCmd(g *globalOptions) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "rm MODEL...",
		Short: "Remove models from the cache (their files are freed unless another model shares them)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			for _, a := range args {
				es, err := matchEntries(store, a, format)
				if err != nil {
					return err
				}
				want := map[string]bool{}
				for _, e := range es {
					want[e.Digest] = true
				}
				removed, err := store.Remove(func(e cache.Entry) bool { return want[e.Digest] })
				if err != nil {
					return err
				}
				for _, e := range removed {
					if !g.quiet {
						fmt.Fprintf(cmd.ErrOrStderr(), "removed %s\n", e.Tag())
					}
				}
			}
			res, err := store.GC(cmd.Context(), cache.GCOptions{})
			if errors.Is(err, cache.ErrBusy) {
				fmt.Fprintln(cmd.ErrOrStderr(), "a pull is running: unreferenced files will be freed by `gptoss gc` later")
				return nil
			}
			if err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "freed %s (%d files)\n", human(res.Bytes), res.Blobs)
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "only this format")
	return c
}

func newGCCmd(g *globalOptions) *cobra.Command {
	var partials bool
	c := &cobra.Command{
		Use:   "gc",
		Short: "Delete unreferenced blobs and temp files (and, with --partial, resumable downloads)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := g.store()
			if err != nil {
				return err
			}
			res, err := store.GC(cmd.Context(), cache.GCOptions{Partials: partials})
			if err != nil {
				return err
			}
			if g.json {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "freed %s: %d blobs, %d partial files\n", human(res.Bytes), res.Blobs, res.Partials)
			return nil
		},
	}
	c.Flags().BoolVar(&partials, "partial", false, "also delete interrupted downloads (they can no longer be resumed)")
	return c
}
