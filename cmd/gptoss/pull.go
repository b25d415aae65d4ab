package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/fetch"
	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/objstore"
	"github.com/gptoss/gptoss/registry/ocilayout"
	"github.com/gptoss/gptoss/registry/sources"
)

type pullOptions struct {
	from        string
	format      string
	revision    string
	include     []string
	exclude     []string
	connections int
	limitRate   string
	dryRun      bool
	offline     bool
	partSize    string
	force       bool
	noConvert   bool
	cloud       cloudFlags // s3:// options
}

func newPullCmd(g *globalOptions) *cobra.Command {
	o := &pullOptions{}
	c := &cobra.Command{
		Use:   "pull MODEL",
		Short: "Download a model into the cache (parallel, resumable, SHA-256 verified)",
		Long: `Download a model into the cache.

MODEL is 20b, 120b, gpt-oss-20b, openai/gpt-oss-20b, hf://org/repo[@rev],
org/repo[@rev] or a directory. Only the files of the chosen format are
fetched (default "hf": config, tokenizer, index and the shards it names —
never original/ or metal/).

Every byte is checked against the source's SHA-256 as it lands; a file whose
hash or size is wrong is never published. Interrupt at any time (Ctrl-C,
kill -9, a dropped network): run the same command again and it resumes.
Free disk space is checked before the first byte, and so is whether the
model would run here (see gptoss doctor): a catalog model that fits neither
a GPU nor RAM is refused (exit 9) unless --force.`,
		Example: `  gptoss pull 20b
  gptoss pull 120b --format original
  gptoss pull hf://openai/gpt-oss-20b@main --include '*.json'
  gptoss pull 20b --from /media/usb/gpt-oss-20b
  HF_ENDPOINT=http://127.0.0.1:8080 gptoss pull 20b --connections 32 --limit-rate 50M`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runPull(cmd, g, o, args[0]) },
	}
	f := c.Flags()
	f.StringVar(&o.from, "from", "", "get the model from here instead: a directory, an OCI layout dir or .tar (gptoss export), oci://HOST/NAMESPACE, s3://BUCKET/PREFIX, az://ACCOUNT/CONTAINER/PREFIX[?SAS], dbfs:/Volumes/CATALOG/SCHEMA/VOLUME/PATH, or a Hub mirror URL (default $GPTOSS_MIRROR, else Hugging Face)")
	f.StringVar(&o.format, "format", "", "file set of a catalog model: hf (default), original, metal")
	f.StringVar(&o.revision, "revision", "", "branch, tag or commit (same as MODEL@REV)")
	f.StringArrayVar(&o.include, "include", nil, "only files matching this glob (repeatable)")
	f.StringArrayVar(&o.exclude, "exclude", nil, "skip files matching this glob (repeatable)")
	f.IntVarP(&o.connections, "connections", "c", 32, "parallel connections (ranges of one file and several files)")
	f.StringVar(&o.limitRate, "limit-rate", "", "cap the total download rate, e.g. 50M, 1.5G (bytes/s)")
	f.BoolVar(&o.dryRun, "dry-run", false, "resolve and show what would be downloaded, download nothing")
	f.BoolVar(&o.offline, "offline", sources.Offline(), "never touch the network; serve from the cache (also GPTOSS_OFFLINE=1 / HF_HUB_OFFLINE=1)")
	f.StringVar(&o.partSize, "part-size", "", "size of one ranged request (default: automatic, 16–256 MiB)")
	f.MarkHidden("part-size")
	f.BoolVar(&o.force, "force", envTrue("GPTOSS_FORCE"), "download even if the model would not run on this machine, e.g. for mirroring (also GPTOSS_FORCE=1)")
	f.BoolVar(&o.noConvert, "no-convert", false, "do not convert a gpt-oss model to the GPU-ready layout after the download (see gptoss convert)")
	o.cloud.add(f)
	return c
}

func runPull(cmd *cobra.Command, g *globalOptions, o *pullOptions, arg string) error {
	ref, err := registry.Parse(arg)
	if err != nil {
		return err
	}
	if o.revision != "" {
		ref.Revision = o.revision
	}
	ref.Format, ref.Include, ref.Exclude = o.format, o.include, o.exclude
	if o.connections < 1 || o.connections > 256 {
		return usageError{fmt.Errorf("--connections must be 1..256")}
	}
	rate, err := parseBytes(o.limitRate)
	if err != nil {
		return usageError{fmt.Errorf("--limit-rate: %w", err)}
	}
	partSize, err := parseBytes(o.partSize)
	if err != nil {
		return usageError{fmt.Errorf("--part-size: %w", err)}
	}
	store, err := g.store()
	if err != nil {
		return err
	}
	src, ref, err := sources.For(ref, o.from, o.cloud.options(store))
	if err != nil {
		return err
	}
	layoutSrc, _ := src.(*ocilayout.Source)
	objSrc, _ := src.(*objstore.Source)
	src = withFitCheck(cmd, g, o, src, ref, store)
	eng := fetch.New(fetch.Options{Connections: o.connections, LimitRate: rate, PartSize: partSize})
	out := newProgress(cmd.OutOrStdout(), cmd.ErrOrStderr(), g.json, g.quiet)
	start := time.Now()
	res, err := eng.Pull(cmd.Context(), src, ref, store, fetch.PullOptions{Offline: o.offline && sources.IsNetwork(src), DryRun: o.dryRun}, out.event)
	out.finish()
	if err != nil {
		return objectStoreHint(objSrc, err)
	}
	// Convert to the GPU-ready layout; with --json before the final
	// "pulled" event, which stays last.
	conv := !o.noConvert && res.Entry != nil
	if conv && layoutSrc != nil && carriedLayout(cmd, store, layoutSrc, ref, *res.Entry) {
		conv = false // the export carried its GPU-ready layout: brought in, verified
	}
	if conv && g.json {
		convertAfterPull(cmd, g, store, *res.Entry)
	}
	// Files no digest was known for: the summary line counts them, the
	// warning (or the "unchecked" event) names them. A rerun after a kill
	// may find them all in the cache, unchecked still, and says so too.
	var unchecked []string
	if res.Entry != nil {
		unchecked = uncheckedPaths(objSrc, res.Manifest)
	}
	if g.json {
		reportUnchecked(cmd, g, objSrc, res.Manifest, unchecked) // "pulled" stays the last event
	}
	if err := out.pulled(res, time.Since(start), store, len(unchecked)); err != nil {
		return err
	}
	if !g.json {
		reportUnchecked(cmd, g, objSrc, res.Manifest, unchecked)
	}
	if conv && !g.json {
		convertAfterPull(cmd, g, store, *res.Entry)
	}
	return nil
}

// carriedLayout brings in the converted layout an OCI layout source carries
// for the pulled model (gptoss export --with-converted), verified by its
// sha256. It reports whether it did; on any problem the caller converts.
func carriedLayout(cmd *cobra.Command, store *cache.Store, src *ocilayout.Source, ref registry.Ref, e cache.Entry) bool {
	models, err := src.Models()
	if err != nil {
		return false
	}
	m, err := ocilayout.Pick(models, ref)
	if err != nil {
		return false
	}
	c, ok, err := src.Converted(*m, convert.LayoutVersion)
	if err != nil || !ok {
		return false
	}
	_, err = importConverted(cmd, store, src, e, c)
	return err == nil
}
