package main

// Object stores on the command line: the S3 flags pull and mirror share,
// the digests a manifest-less prefix is checked against, the "not checked"
// report, and mirror --to s3://….

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/sources"
)

// cloudFlags are the object-store options of pull and mirror.
type cloudFlags struct {
	endpoint, region string
	noSign           bool
}

func (c *cloudFlags) add(f *pflag.FlagSet) {
	f.StringVar(&c.endpoint, "endpoint", "", "s3://: an S3-compatible endpoint, e.g. http://127.0.0.1:7070 (default AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS); az://: the blob service, e.g. Azurite's http://127.0.0.1:10000 (default AZURE_STORAGE_BLOB_ENDPOINT, else ACCOUNT.blob.core.windows.net)")
	f.StringVar(&c.region, "region", "", "s3://: the bucket's region (default: discovered from the bucket)")
	f.BoolVar(&c.noSign, "no-sign-request", false, "s3://: send unsigned requests (public buckets; automatic when no AWS credentials are found); az://: no credentials (a container with public access)")
}

func (c *cloudFlags) options(store *cache.Store) sources.Options {
	o := sources.Options{Known: knownDigests(store)}
	o.S3.Endpoint, o.S3.Region, o.S3.Anonymous = c.endpoint, c.region, c.noSign
	o.Azure.Endpoint, o.Azure.Anonymous = c.endpoint, c.noSign
	return o
}

// knownDigests is what a prefix without a gptoss manifest is checked
// against: the catalog's digests, then those of the same model verified
// by earlier pulls into this cache (same path and size).
func knownDigests(store *cache.Store) objstore.KnownFunc {
	var (
		once  sync.Once
		known map[string]string // name|path|size → sha256
	)
	return func(name, p string, size int64) (string, bool) {
		if d, ok := registry.KnownSHA256(name, p, size); ok {
			return d, true
		}
		once.Do(func() {
			known = map[string]string{}
			if store == nil {
				return
			}
			es, err := store.List()
			if err != nil {
				return
			}
			for _, e := range es {
				for _, f := range e.Manifest.Files {
					if registry.IsSHA256Hex(f.SHA256) {
						known[fmt.Sprintf("%s|%s|%d", strings.ToLower(e.Manifest.Name), f.Path, f.Size)] = f.SHA256
					}
				}
			}
		})
		d, ok := known[fmt.Sprintf("%s|%s|%d", strings.ToLower(name), p, size)]
		return d, ok
	}
}

// uncheckedPaths lists, sorted, the files of m that src could not give any
// digest for (an object-store prefix without a manifest): their sha256 was
// computed as they arrived but could not be checked against anything.
func uncheckedPaths(src *objstore.Source, m *registry.Manifest) []string {
	if src == nil || m == nil {
		return nil
	}
	un := map[string]bool{}
	for _, p := range src.Unchecked() {
		un[p] = true
	}
	var paths []string
	for _, f := range m.Files {
		if un[f.Path] {
			paths = append(paths, f.Path)
		}
	}
	sort.Strings(paths)
	return paths
}

// reportUnchecked says which pulled files could not be checked against any
// digest (paths, from uncheckedPaths).
func reportUnchecked(cmd *cobra.Command, g *globalOptions, src *objstore.Source, m *registry.Manifest, paths []string) {
	if len(paths) == 0 || g.quiet {
		return
	}
	if g.json {
		json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "unchecked", "source": src.Describe(), "files": paths})
		return
	}
	why := "it has no " + objstore.ManifestName + ", no sha256 metadata, and the catalog knows no digest for them"
	fmt.Fprintf(cmd.ErrOrStderr(), "gptoss: warning: %d of %d files from %s could not be checked against anything (%s): %s; "+
		"their sha256 was computed as they arrived (mirror the model with gptoss to get a manifest)\n",
		len(paths), len(m.Files), src.Describe(), why, strings.Join(paths, ", "))
}

// mirrorObject is mirror --to an object-store location: every picked
// format of one revision goes under the one prefix (the manifest merges
// them), files already there with the same sha256 are skipped, and
// gptoss-manifest.json is written last.
func mirrorObject(cmd *cobra.Command, g *globalOptions, to string, pick []cache.Entry, store *cache.Store, connections int, cf *cloudFlags) error {
	for _, e := range pick[1:] {
		if e.Manifest.Revision != pick[0].Manifest.Revision {
			var fs []string
			for _, e := range pick {
				fs = append(fs, e.Manifest.Format+" @ "+short(e.Manifest.Revision))
			}
			return usageError{fmt.Errorf("%s is cached at several revisions (%s) and a prefix holds one: pick one with --format", pick[0].Manifest.Name, strings.Join(fs, ", "))}
		}
	}
	dst, err := sources.ObjectTarget(cmd.Context(), to, cf.options(nil))
	if err != nil {
		return err
	}
	loc := dst.Describe()
	eng := fetch.New(fetch.Options{Connections: connections})
	for _, e := range pick {
		m := e.Manifest
		if err := dst.Prepare(cmd.Context(), m); err != nil {
			return fmt.Errorf("mirror %s to %s: %w", m.Name, loc, err)
		}
		start := time.Now()
		res, up, skip, err := mirrorOne(cmd, g, eng, store, m, dst, loc)
		if err != nil {
			return fmt.Errorf("mirror %s (%s) to %s: %w", m.Name, m.Format, loc, err)
		}
		if g.json {
			json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{"event": "mirrored", "name": m.Name, "format": m.Format,
				"revision": m.Revision, "files": len(m.Files), "size": m.TotalSize(), "uploaded": res.Uploaded, "skipped": res.Skipped,
				"bytes": res.Bytes, "reference": loc, "manifest": loc + "/" + objstore.ManifestName,
				"uploadedFiles": nonNil(up), "skippedFiles": nonNil(skip)})
			continue
		}
		if !g.quiet {
			fmt.Fprintf(cmd.ErrOrStderr(), "mirrored %s (%s) @ %s: %d files, %s; %d uploaded (%s in %s), %d already there\n",
				m.Name, m.Format, short(m.Revision), len(m.Files), human(m.TotalSize()), res.Uploaded, human(res.Bytes),
				time.Since(start).Round(time.Millisecond), res.Skipped)
		}
	}
	if !g.json {
		fmt.Fprintln(cmd.OutOrStdout(), loc)
	}
	return nil
}

// objectStoreHint says what to do when an object's bytes do not match the
// digest its prefix promised (a damaged or replaced object): nothing was
// published, and the fix is at the source.
func objectStoreHint(src *objstore.Source, err error) error {
	if src == nil || !errors.Is(err, registry.ErrDigestMismatch) {
		return err
	}
	what := "sha256 metadata or the digest known for it"
	if src.HasManifest() {
		what = objstore.ManifestName
	}
	return fmt.Errorf("%w (an object in %s is not what its %s says; nothing was kept: replace it, e.g. delete it and run gptoss mirror again)", err, src.Describe(), what)
}

// mirrorOne mirrors one cached model to dst with eng, reporting progress as
// the mirror commands do; where names the destination in messages. It
// returns the result and the paths uploaded and skipped.
func mirrorOne(cmd *cobra.Command, g *globalOptions, eng *fetch.Engine, store *cache.Store, m *registry.Manifest, dst registry.Target, where string) (*fetch.MirrorResult, []string, []string, error) {
	out := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), g.json, g.quiet)
	var mu sync.Mutex
	var up, skip []string
	if !g.json && !g.quiet {
		fmt.Fprintf(cmd.ErrOrStderr(), "mirroring %s (%s) @ %s to %s\n", m.Name, m.Format, short(m.Revision), where)
	}
	res, err := eng.Mirror(cmd.Context(), store, m, dst, func(ev fetch.Event) {
		mu.Lock()
		switch ev.Kind {
		case fetch.EventFileDone:
			up = append(up, ev.File.Path)
		case fetch.EventFileCached:
			skip = append(skip, ev.File.Path)
		}
		mu.Unlock()
		switch {
		case g.json:
			out.event(ev)
		case g.quiet:
		case ev.Kind == fetch.EventFileDone:
			fmt.Fprintf(cmd.ErrOrStderr(), "  ↑ %s  %s  uploaded\n", ev.File.Path, human(ev.File.Size))
		case ev.Kind == fetch.EventFileCached:
			fmt.Fprintf(cmd.ErrOrStderr(), "  = %s  %s  already there\n", ev.File.Path, human(ev.File.Size))
		case ev.Kind == fetch.EventRetry:
			fmt.Fprintf(cmd.ErrOrStderr(), "  ↻ %s: %v; retry %d in %s\n", ev.File.Path, ev.Err, ev.Attempt, ev.Delay.Round(time.Millisecond))
		}
	})
	out.finish()
	return res, up, skip, err
}
