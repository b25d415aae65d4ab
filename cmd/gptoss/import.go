package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/ocilayout"
)

func newImportCmd(g *globalOptions) *cobra.Command {
	var connections int
	c := &cobra.Command{
		Use:   "import FILE.tar|DIR [MODEL]",
		Short: "Bring the models of an OCI layout (from gptoss export) into the cache, verified, offline",
		Long: `Bring every model of an OCI image layout (a directory, or a tar, as written
by gptoss export) into the cache, or only MODEL. Each file is checked
against the SHA-256 of the layout's manifest as it is copied; a file that
does not match is never published, and nothing is committed. The tar is
read in place (never extracted); entries that are links, devices, absolute
or ".." paths, or duplicates make the whole archive refused.

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
				if g.json {
					json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "imported", "name": pm.Name,
						"format": pm.Format, "revision": pm.Revision, "files": len(pm.Files), "size": pm.TotalSize(),
						"copied": res.Plan.NeedBytes, "seconds": time.Since(start).Seconds(), "path": dir,
						"manifest": "sha256:" + res.Entry.Digest})
					continue
				}
				if !g.quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), "imported %s (%s) @ %s: %d files, %s (%s copied), verified\n",
						pm.Name, pm.Format, short(pm.Revision), len(pm.Files), human(pm.TotalSize()), human(res.Plan.NeedBytes))
				}
				fmt.Fprintln(cmd.OutOrStdout(), dir)
			}
			return nil
		},
	}
	c.Flags().IntVarP(&connections, "connections", "c", 8, "parallel reads")
	return c
}
