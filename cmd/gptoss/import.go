package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/ocilayout"
)

func newImportCmd(g *globalOptions) *cobra.Command {
	var (
		connections int
		noConvert   bool
	)
	c := &cobra.Command{
		Use:   "import FILE.tar|DIR [MODEL]",
		Short: "Bring the models of an OCI layout (from gptoss export) into the cache, verified, offline",
		Long: `Bring every model of an OCI image layout (a directory, or a tar, as written
by gptoss export) into the cache, or only MODEL. Each file is checked
against the SHA-256 of the layout's manifest as it is copied; a file that
does not match is never published, and nothing is committed. The tar is
read in place (never extracted); entries that are links, devices, absolute
or ".." paths, or duplicates make the whole archive refused.

A converted GPU-ready layout that the layout carries for a model (gptoss
export --with-converted) is brought in too, checked against its SHA-256;
otherwise a gpt-oss model is converted here after the import, as gptoss
pull does (--no-convert skips that).

import only reads the layout: it never touches the network, so it works
with GPTOSS_OFFLINE=1. Afterwards gptoss pull 20b (offline), path, verify
and run find the model as if it had been pulled.`,
		Example: `  GPTOSS_OFFLINE=1 gptoss import /media/usb/gpt-oss-20b.tar
  gptoss import /media/usb/models 20b`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if connections < 1 || connections > 256 {
				return usageError{fmt.Errorf("--connections must be 1..256")}
			}
			src, err := ocilayout.NewSource(args[0])
			if err != nil {
				return err
			}
			models, err := src.Models()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				ref, err := registry.Parse(args[1])
				if err != nil {
					return err
				}
				var keep []ocilayout.Model
				for _, m := range models {
					if m.Name == ref.Name() && (ref.Revision == "" || ref.Revision == m.Revision || ref.Revision == m.Requested ||
						(len(ref.Revision) >= 7 && len(m.Revision) >= len(ref.Revision) && m.Revision[:len(ref.Revision)] == ref.Revision)) {
						keep = append(keep, m)
					}
				}
				if len(keep) == 0 {
					_, err := ocilayout.Pick(models, ref) // says what the layout has
					return err
				}
				models = keep
			}
			if len(models) == 0 {
				return fmt.Errorf("%s holds no models: %w", src.Describe(), registry.ErrNotFound)
			}
			store, err := g.store()
			if err != nil {
				return err
			}
			eng := fetch.New(fetch.Options{Connections: connections})
			for _, m := range models {
				ref := registry.Ref{Scheme: registry.SchemeHF, Repo: m.Name, Model: registry.Lookup(m.Name),
					Format: m.Format, Revision: m.Requested}
				if ref.Revision == "" {
					ref.Revision = m.Revision
				}
				if ref.Model == nil {
					ref.Format = "custom"
				}
				out := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), g.json, g.quiet)
				start := time.Now()
				res, err := eng.Pull(cmd.Context(), src, ref, store, fetch.PullOptions{}, out.event)
				out.finish()
				if err != nil {
					return fmt.Errorf("import %s (%s) from %s: %w", m.Name, m.Format, src.Describe(), err)
				}
				pm := res.Manifest
				dir := store.SnapshotDir(pm)
				// The converted layout: carried by the layout, or made here
				// (with --json before the final "imported" event).
				carried, ok, err := src.Converted(m, convert.LayoutVersion)
				if err != nil {
					return err
				}
				var layout *convertResult
				if ok {
					if layout, err = importConverted(cmd, store, src, *res.Entry, carried); err != nil {
						return fmt.Errorf("import %s (%s) from %s: GPU-ready layout: %w", m.Name, m.Format, src.Describe(), err)
					}
				}
				conv := !ok && !noConvert
				if conv && g.json {
					convertAfterPull(cmd, g, store, *res.Entry)
				}
				if g.json {
					ev := map[string]any{"event": "imported", "name": pm.Name,
						"format": pm.Format, "revision": pm.Revision, "files": len(pm.Files), "size": pm.TotalSize(),
						"copied": res.Plan.NeedBytes, "seconds": time.Since(start).Seconds(), "path": dir,
						"manifest": "sha256:" + res.Entry.Digest}
					if layout != nil {
						ev["layout"] = layout.path
						ev["layout_sha256"] = layout.sha256
					}
					json.NewEncoder(cmd.OutOrStdout()).Encode(ev)
					continue
				}
				if !g.quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), "imported %s (%s) @ %s: %d files, %s (%s copied), verified\n",
						pm.Name, pm.Format, short(pm.Revision), len(pm.Files), human(pm.TotalSize()), human(res.Plan.NeedBytes))
					if layout != nil {
						how := "imported its GPU-ready layout"
						if layout.already {
							how = "its GPU-ready layout was already here"
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "%s (%s): %s (v%d, %s), verified\n", pm.Name, pm.Format, how, convert.LayoutVersion, human(layout.size))
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), dir)
				if conv {
					convertAfterPull(cmd, g, store, *res.Entry)
				}
			}
			return nil
		},
	}
	c.Flags().IntVarP(&connections, "connections", "c", 8, "parallel reads")
	c.Flags().BoolVar(&noConvert, "no-convert", false, "do not convert a gpt-oss model to the GPU-ready layout when the layout carries none (see gptoss convert)")
	return c
}

// importConverted copies the converted layout c that src carries for the
// imported entry e into the cache (its sha256 checked as it is copied) and
// records it against e, unless e already has it.
func importConverted(cmd *cobra.Command, store *cache.Store, src *ocilayout.Source, e cache.Entry, c *ocilayout.Converted) (*convertResult, error) {
	if h, ok := store.Converted(e.Digest, c.Version); ok && h == c.SHA256 {
		return &convertResult{path: store.BlobPath(h), sha256: h, size: c.Size, already: true}, nil
	}
	release, err := store.HoldForPull(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer release()
	r, err := src.Open(cmd.Context(), registry.File{Path: "gpu-layout", SHA256: c.SHA256, Size: c.Size}, 0, -1)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := store.AddConverted(e.Digest, c.Version, r, c.SHA256, c.Size); err != nil {
		return nil, err
	}
	return &convertResult{path: store.BlobPath(c.SHA256), sha256: c.SHA256, size: c.Size}, nil
}
