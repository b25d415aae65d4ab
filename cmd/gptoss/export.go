package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/ocilayout"
)

func newExportCmd(g *globalOptions) *cobra.Command {
	var (
		to, format    string
		connections   int
		withConverted bool
	)
	c := &cobra.Command{
		Use:   "export MODEL --to DIR|FILE.tar",
		Short: "Write a cached model to an OCI image layout (directory or tar) for an air-gapped machine",
		Long: `Write a cached model to an OCI image layout: a directory, or a single tar
when the path ends in .tar. Carry it across the air gap and run
gptoss import on the other side (or gptoss pull 20b --from PATH).

The layout holds one CNCF ModelPack manifest per model and format (tagged
"<name>:<format>", e.g. openai/gpt-oss-20b:hf) and every file as a blob under
blobs/sha256, so oras, skopeo and ModelPack tools can read it too. Blobs are
copied from the cache, checked against their SHA-256, and the index is
written last: an interrupted export is never mistaken for a complete one.
Exporting again to the same place skips the blobs already there, and adds
other models to it. A tar is staged in FILE.tar.staging and written
(sorted, with fixed timestamps and owners) when complete; it needs the
model's size twice while it is being written.

Every format of MODEL in the cache is exported unless --format picks one.
With --with-converted the model's converted GPU-ready layout (gptoss
convert) goes too, as an OCI referrer of the model manifest, so that
gptoss import on the other side need not convert again.
Nothing here touches the network.`,
		Example: `  gptoss export 20b --to /media/usb/gpt-oss-20b.tar
  gptoss export 20b --format original --to /media/usb/models
  gptoss export 20b --with-converted --to /media/usb/gpt-oss-20b.tar
  # on the air-gapped machine:
  GPTOSS_OFFLINE=1 gptoss import /media/usb/gpt-oss-20b.tar`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usageError{fmt.Errorf("--to DIR|FILE.tar is required")}
			}
			if connections < 1 || connections > 64 {
				return usageError{fmt.Errorf("--connections must be 1..64")}
			}
			store, es, err := g.cached(args[0], format)
			if err != nil {
				return err
			}
			pick := newestPerFormat(es)
			t, err := ocilayout.NewTarget(to)
			if err != nil {
				return err
			}
			eng := fetch.New(fetch.Options{Connections: connections})
			out := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), g.json, g.quiet)
			type row struct {
				Event    string `json:"event"`
				Name     string `json:"name"`
				Format   string `json:"format"`
				Revision string `json:"revision"`
				Files    int    `json:"files"`
				Size     int64  `json:"size"`
				Written  int    `json:"written"`
				Skipped  int    `json:"skipped"`
				Bytes    int64  `json:"bytes"`
				Path     string `json:"path"`
				Layout   string `json:"layout,omitempty"`
			}
			for _, e := range pick {
				m := e.Manifest
				t.Requested = e.Requested
				t.Converted = nil
				if withConverted {
					c, err := exportConverted(cmd, store, t, e)
					if err != nil {
						return fmt.Errorf("export %s (%s) to %s: %w", m.Name, m.Format, t.Path, err)
					}
					if c == nil {
						msg := fmt.Sprintf("%s (%s) @ %s is not converted: exporting it without a GPU-ready layout (run gptoss convert %s --format %s first to carry one)",
							m.Name, m.Format, short(m.Revision), m.Name, m.Format)
						if g.json {
							json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "warning", "message": msg})
						} else {
							fmt.Fprintf(cmd.ErrOrStderr(), "gptoss: warning: %s\n", msg)
						}
					}
					t.Converted = c
				}
				res, err := eng.Mirror(cmd.Context(), store, m, t, out.event)
				out.finish()
				if err != nil {
					return fmt.Errorf("export %s (%s) to %s: %w", m.Name, m.Format, t.Path, err)
				}
				layout, with := "", ""
				if t.Converted != nil {
					layout = "sha256:" + t.Converted.SHA256
					with = fmt.Sprintf(", with its GPU-ready layout (v%d, %s)", t.Converted.Version, human(t.Converted.Size))
				}
				if g.json {
					json.NewEncoder(cmd.OutOrStdout()).Encode(row{"exported", m.Name, m.Format, m.Revision, len(m.Files),
						m.TotalSize(), res.Uploaded, res.Skipped, res.Bytes, t.Path, layout})
				} else if !g.quiet {
					fmt.Fprintf(cmd.ErrOrStderr(), "exported %s (%s) @ %s: %d files, %s; %d written (%s), %d already there%s\n",
						m.Name, m.Format, short(m.Revision), len(m.Files), human(m.TotalSize()), res.Uploaded, human(res.Bytes), res.Skipped, with)
				}
			}
			if !g.json {
				fmt.Fprintln(cmd.OutOrStdout(), t.Path)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&to, "to", "", "the OCI layout to write: a directory, or FILE.tar (required)")
	f.StringVar(&format, "format", "", "only this format (hf, original, metal); default every cached format")
	f.IntVarP(&connections, "connections", "c", 4, "files copied at once")
	f.BoolVar(&withConverted, "with-converted", false, "also carry the model's converted GPU-ready layout (see gptoss convert), so import need not convert")
	return c
}

// exportConverted copies the converted layout of e (the current layout
// version) into the target, checking its sha256 on the way, and returns
// it for the target's next Commit; nil when e is not converted.
func exportConverted(cmd *cobra.Command, store *cache.Store, t *ocilayout.Target, e cache.Entry) (*ocilayout.Converted, error) {
	h, ok := store.Converted(e.Digest, convert.LayoutVersion)
	if !ok {
		return nil, nil
	}
	f, err := os.Open(store.BlobPath(h))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	c := &ocilayout.Converted{Version: convert.LayoutVersion, SHA256: h, Size: fi.Size()}
	file := registry.File{Path: "gpu-layout", SHA256: h, Size: fi.Size()}
	if there, err := t.Stat(cmd.Context(), file); err != nil {
		return nil, err
	} else if !there {
		if err := t.Put(cmd.Context(), file, f); err != nil {
			return nil, fmt.Errorf("GPU-ready layout: %w", err)
		}
	}
	return c, nil
}
