// Command gptoss-testhub serves directories as Hugging Face model repos over
// the Hub protocol (internal/hubtest), for demos, interop checks with other
// clients and benchmarks; "gptoss-testhub gen" writes a gpt-oss-shaped
// checkpoint (internal/fixture) to serve.
//
//	gptoss-testhub gen --out /tmp/oss --size 4GiB
//	gptoss-testhub --repo openai/gpt-oss-20b=/tmp/oss --rate 50MB
//	HF_ENDPOINT=http://127.0.0.1:PORT hf download openai/gpt-oss-20b
//
// When the hub is listening it prints exactly one line to stdout,
// "HF_ENDPOINT=http://127.0.0.1:PORT" (also written to --ready-file), and it
// serves until SIGINT or SIGTERM. Logs go to stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gptoss/gptoss/internal/fixture"
	"github.com/gptoss/gptoss/internal/hubtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "gen" {
		err = runGen(os.Args[2:], os.Stdout, os.Stderr)
	} else {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "serve" {
			args = args[1:]
		}
		err = runServe(ctx, args, os.Stdout, os.Stderr)
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gptoss-testhub:", err)
		os.Exit(2)
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// sizeFlag parses sizes such as 4GiB, 500MB, 1.5G, 1048576.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	*s = sizeFlag(n)
	return err
}

func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	units := []struct {
		suf string
		mul float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	}
	mul := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suf)) && (len(u.suf) == 3 || !strings.HasSuffix(t, "iB")) {
			t, mul = strings.TrimSpace(t[:len(t)-len(u.suf)]), u.mul
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("bad size %q (examples: 4GiB, 500MB, 1048576)", v)
	}
	return int64(f * mul), nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gptoss-testhub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		repos, branches, tokens, accepted listFlag
		rate, dropAfter, truncAfter       sizeFlag
		corruptAt                         sizeFlag
	)
	fs.Var(&repos, "repo", "serve `ORG/NAME=DIR` as a model repo (repeatable)")
	fs.Var(&branches, "branch", "serve `ORG/NAME@BRANCH=DIR` as another branch of a repo (repeatable)")
	addr := fs.String("addr", "127.0.0.1:0", "hub listen `address`")
	cdnAddr := fs.String("cdn-addr", "127.0.0.1:0", "CDN listen `address` (LFS downloads are redirected here)")
	cdnHost := fs.String("cdn-host", "", "host name to put in CDN redirect URLs (e.g. localhost)")
	fs.Var(&rate, "rate", "cap each file response at `BYTES` per second (e.g. 50MB; 0 = uncapped)")
	pageSize := fs.Int("page-size", 1000, "tree listing page size")
	fs.Var(&tokens, "token", "valid access `token` (repeatable; default: any token is valid)")
	gated := fs.Bool("gated", false, "make every repo gated (downloads need a --token that accepted it)")
	fs.Var(&accepted, "accepted", "`token` that accepted the gate (repeatable; default: every --token)")
	private := fs.Bool("private", false, "make every repo private (every endpoint needs a --token)")
	fail503 := fs.Int("fail-503", 0, "answer the first `K` requests with 503")
	retryAfter := fs.Int("retry-after", 1, "Retry-After `seconds` of injected 503s")
	fs.Var(&dropAfter, "drop-after", "reset the connection after `BYTES` of a file body (with --drop-count)")
	dropCount := fs.Int("drop-count", 1, "number of body responses to reset (-1 = all)")
	fs.Var(&truncAfter, "truncate-after", "close the connection cleanly after `BYTES` of a file body")
	truncCount := fs.Int("truncate-count", 1, "number of body responses to truncate (-1 = all)")
	corruptCount := fs.Int("corrupt-count", 0, "flip one byte in the first `K` body responses (-1 = all)")
	fs.Var(&corruptAt, "corrupt-offset", "body offset of the flipped byte")
	faultPath := fs.String("fault-path", "", "apply faults only to files matching this `glob`")
	headerDelay := fs.Duration("header-delay", 0, "delay every response by this `duration` before its headers")
	urlTTL := fs.Duration("url-ttl", time.Hour, "lifetime of signed CDN URLs")
	seed := fs.Uint64("seed", 0, "PRNG seed for probabilistic faults")
	readyFile := fs.String("ready-file", "", "also write the HF_ENDPOINT=… line to this `file`")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if len(repos) == 0 {
		return errors.New("no --repo ORG/NAME=DIR given")
	}
	opts := hubtest.Options{
		Addr: *addr, CDNAddr: *cdnAddr, CDNHost: *cdnHost, PageSize: *pageSize,
		Tokens: tokens, Rate: int64(rate), HeaderDelay: *headerDelay, URLTTL: *urlTTL, Seed: *seed,
	}
	if *verbose {
		opts.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	}
	if *fail503 != 0 {
		opts.Faults = append(opts.Faults, hubtest.Fault{Kind: hubtest.Fault503, Count: *fail503, RetryAfter: *retryAfter, Path: *faultPath})
	}
	if dropAfter > 0 {
		opts.Faults = append(opts.Faults, hubtest.Fault{Kind: hubtest.FaultDrop, Count: *dropCount, AfterBytes: int64(dropAfter), Path: *faultPath})
	}
	if truncAfter > 0 {
		opts.Faults = append(opts.Faults, hubtest.Fault{Kind: hubtest.FaultTruncate, Count: *truncCount, AfterBytes: int64(truncAfter), Path: *faultPath})
	}
	if *corruptCount != 0 {
		opts.Faults = append(opts.Faults, hubtest.Fault{Kind: hubtest.FaultCorrupt, Count: *corruptCount, AfterBytes: int64(corruptAt), Path: *faultPath})
	}
	var ropts []hubtest.RepoOption
	if *private {
		ropts = append(ropts, hubtest.Private())
	}
	if *gated {
		acc := accepted
		if len(acc) == 0 {
			acc = tokens
		}
		ropts = append(ropts, hubtest.Gated(acc...))
	}
	extra := map[string][]hubtest.RepoOption{}
	for _, b := range branches {
		idBranch, dir, ok := strings.Cut(b, "=")
		id, branch, ok2 := strings.Cut(idBranch, "@")
		if !ok || !ok2 || dir == "" || branch == "" {
			return fmt.Errorf("--branch %q: want ORG/NAME@BRANCH=DIR", b)
		}
		extra[id] = append(extra[id], hubtest.WithBranch(branch, dir))
	}

	srv, err := hubtest.Start(opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	for _, r := range repos {
		id, dir, ok := strings.Cut(r, "=")
		if !ok || dir == "" {
			return fmt.Errorf("--repo %q: want ORG/NAME=DIR", r)
		}
		t0 := time.Now()
		repo, err := srv.AddRepo(id, dir, append(append([]hubtest.RepoOption(nil), ropts...), extra[id]...)...)
		if err != nil {
			return err
		}
		var size int64
		for _, f := range repo.Files {
			size += f.Size
		}
		fmt.Fprintf(stderr, "serving %s (%d files, %d bytes, commit %s) from %s [scanned in %s]\n",
			id, len(repo.Files), size, repo.Commit, dir, time.Since(t0).Round(time.Millisecond))
		delete(extra, id)
	}
	for id := range extra {
		return fmt.Errorf("--branch for %s, which has no --repo", id)
	}
	fmt.Fprintf(stderr, "hub %s, CDN %s\n", srv.URL, srv.CDNURL)
	line := "HF_ENDPOINT=" + srv.URL
	if *readyFile != "" {
		tmp := *readyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(line+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, *readyFile); err != nil {
			return err
		}
	}
	fmt.Fprintln(stdout, line)
	<-ctx.Done()
	fmt.Fprintln(stderr, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}

func runGen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gptoss-testhub gen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var size sizeFlag
	out := fs.String("out", "", "output `directory` (required)")
	fs.Var(&size, "size", "approximate size of the HF weights, e.g. 4GiB (grows vocab and experts)")
	tiny := fs.Bool("tiny", false, "write the tiny fixture (the golden dims, ~1.3 MB of weights)")
	preset := fs.String("preset", "", "start from real dims: 20b or 120b (huge: 13.8 GB / 65 GB)")
	original := fs.String("original", "full", "original/ folder: full, stub or none")
	metal := fs.Int64("metal-bytes", 1<<20, "size of the metal/model.bin stand-in (-1 = none)")
	seed := fs.Uint64("seed", 0, "weights PRNG seed")
	o := fixture.Options{}
	fs.IntVar(&o.Layers, "layers", 0, "num_hidden_layers")
	fs.IntVar(&o.Experts, "experts", 0, "num_local_experts")
	fs.IntVar(&o.ExpertsPerToken, "experts-per-token", 0, "num_experts_per_tok")
	fs.IntVar(&o.Hidden, "hidden", 0, "hidden_size (multiple of 32)")
	fs.IntVar(&o.ExpertWidth, "expert-width", 0, "intermediate_size (multiple of 32)")
	fs.IntVar(&o.Heads, "heads", 0, "num_attention_heads")
	fs.IntVar(&o.KVHeads, "kv-heads", 0, "num_key_value_heads")
	fs.IntVar(&o.HeadDim, "head-dim", 0, "head_dim")
	fs.IntVar(&o.Vocab, "vocab", 0, "vocab_size")
	fs.IntVar(&o.Shards, "shards", 0, "number of HF shards")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("gen: --out DIR is required")
	}
	base := fixture.Options{}
	switch {
	case *tiny:
		base = fixture.Tiny()
	case *preset == "20b":
		base = fixture.GPTOSS20B()
	case *preset == "120b":
		base = fixture.GPTOSS120B()
	case *preset != "":
		return fmt.Errorf("gen: unknown --preset %q", *preset)
	}
	merge := func(dst *int, v int) {
		if v != 0 {
			*dst = v
		}
	}
	merge(&base.Layers, o.Layers)
	merge(&base.Experts, o.Experts)
	merge(&base.ExpertsPerToken, o.ExpertsPerToken)
	merge(&base.Hidden, o.Hidden)
	merge(&base.ExpertWidth, o.ExpertWidth)
	merge(&base.Heads, o.Heads)
	merge(&base.KVHeads, o.KVHeads)
	merge(&base.HeadDim, o.HeadDim)
	merge(&base.Vocab, o.Vocab)
	merge(&base.Shards, o.Shards)
	base.TargetBytes = int64(size)
	base.Seed = *seed
	base.MetalBytes = *metal
	switch *original {
	case "full":
		base.Original = fixture.OriginalFull
	case "stub":
		base.Original = fixture.OriginalStub
	case "none":
		base.Original = fixture.OriginalNone
	default:
		return fmt.Errorf("gen: --original must be full, stub or none")
	}
	t0 := time.Now()
	l, err := fixture.WriteLayout(*out, base)
	if err != nil {
		return err
	}
	r := l.Options
	fmt.Fprintf(stdout, "wrote %s: %d bytes of HF weights in %d shards (layers %d, experts %d, hidden %d, vocab %d) in %s\n",
		*out, l.TotalBytes, len(l.ShardNames), r.Layers, r.Experts, r.Hidden, r.Vocab, time.Since(t0).Round(time.Millisecond))
	return nil
}
