package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// PullOptions steer Pull.
type PullOptions struct {
	Offline bool // serve from the cache only, never touch the source
	DryRun  bool // resolve and plan, download nothing
}

// PullResult says what Pull did.
type PullResult struct {
	Entry    *cache.Entry       // the committed cache entry (nil on a dry run)
	Manifest *registry.Manifest // the selected files
	Plan     Plan
	Cached   bool // everything was already in the cache
	Offline  bool // served from the cache without asking the source
	Warning  string
}

// Pull is the whole `gptoss pull`: resolve ref at src, narrow it to the
// requested format, check disk space, download what the cache lacks
// (verified, resumable), and commit the manifest. Offline, or when the
// reference pins a commit the cache already has, it never contacts src.
func (e *Engine) Pull(ctx context.Context, src registry.Source, ref registry.Ref, store *cache.Store, o PullOptions, progress func(Event)) (*PullResult, error) {
	format := ref.Format
	if format == "" && ref.Model != nil && len(ref.Include) == 0 {
		format = ref.Model.DefaultFormat
	}
	requested := ref.Revision
	if requested == "" {
		requested = "main"
	}
	cached := func() (*cache.Entry, error) {
		if len(ref.Include) > 0 || len(ref.Exclude) > 0 {
			return nil, registry.ErrNotFound
		}
		return store.Find(ref.Name(), format, requested)
	}
	if o.Offline {
		ent, err := cached()
		if err != nil {
			if !errors.Is(err, registry.ErrNotFound) {
				return nil, fmt.Errorf("%w: cannot read the cache: %w", registry.ErrOffline, err)
			}
			what := "format " + format
			if format == "" {
				what = "the selected files"
			}
			return nil, fmt.Errorf("%w: %s (%s, revision %s) is not in the cache %s; "+
				"bring it in with `gptoss import FILE.tar|DIR` (made by `gptoss export` on a connected machine), "+
				"or unset GPTOSS_OFFLINE and HF_HUB_OFFLINE (and drop --offline) to download it",
				registry.ErrOffline, ref.Name(), what, requested, store.Root)
		}
		return &PullResult{Entry: ent, Manifest: ent.Manifest, Cached: true, Offline: true}, nil
	}
	if registry.IsCommit(ref.Revision) {
		if ent, err := cached(); err == nil {
			return &PullResult{Entry: ent, Manifest: ent.Manifest, Cached: true}, nil
		}
	}
	all, err := src.Resolve(ctx, ref)
	if err != nil {
		var he *registry.HTTPError
		if ctx.Err() == nil && !errors.As(err, &he) && !registry.IsPermanent(err) {
			if ent, cerr := cached(); cerr == nil {
				return &PullResult{Entry: ent, Manifest: ent.Manifest, Cached: true,
					Warning: fmt.Sprintf("could not reach the source (%v); using the cached copy", err)}, nil
			}
		}
		return nil, err
	}
	m, err := registry.SelectFiles(ctx, &retrySource{Source: src, e: e}, ref, all)
	if err != nil {
		return nil, err
	}
	if d, ok := src.(registry.Describer); ok {
		m.Source = d.Describe()
	}
	release, err := store.HoldForPull(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	plan, err := e.Plan(m, store)
	res := &PullResult{Manifest: m, Plan: plan}
	if err != nil {
		return res, err
	}
	if o.DryRun {
		return res, nil
	}
	// Small files first: configs and the tokenizer land at once, and an
	// interruption finds them done rather than in flight behind the shards.
	sort.SliceStable(m.Files, func(i, j int) bool { return m.Files[i].Size < m.Files[j].Size })
	var finished []string // keys of digest-less files: Fetch leaves finished records for them
	for _, f := range m.Files {
		if digestless(f) {
			finished = append(finished, FileKey(m, f))
		}
	}
	if err := e.Fetch(ctx, src, m, store, progress); err != nil {
		return res, err
	}
	ent, err := store.Commit(m, requested)
	if err != nil {
		return res, err
	}
	// Committed: the cache now finds those files by sha256.
	removeFinished(store, finished)
	res.Entry = ent
	res.Cached = plan.NeedBytes == 0
	return res, nil
}

// retrySource reads small metadata files (the safetensors index that
// selection needs) whole, retrying temporary failures with the engine's
// backoff and the server's Retry-After, as the engine does for parts.
type retrySource struct {
	registry.Source
	e *Engine
}

func (r *retrySource) Open(ctx context.Context, f registry.File, off, n int64) (io.ReadCloser, error) {
	var data []byte
	err := r.e.retry().Do(ctx, func() error {
		rc, err := r.Source.Open(ctx, f, off, n)
		if err != nil {
			return err
		}
		defer rc.Close()
		data, err = io.ReadAll(rc)
		return err
	})
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}
