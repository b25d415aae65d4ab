package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/verify"
)

// Verification levels. "digests" re-hashes every file against its manifest;
// every other level runs the structureChecks that name it; "all" runs the
// digests and every structure check.
const (
	levelDigests   = "digests"
	levelStructure = "structure"
	levelAll       = "all"
)

// structureCheck is one check of a cached model beyond its digests. Run adds
// its findings to r with r.Add (which makes the model fail verification).
type structureCheck struct {
	Name   string
	Levels []string // the --level values that run it (besides "all")
	Run    func(ctx context.Context, s *cache.Store, e cache.Entry, r *verify.StructureReport)
}

// structureChecks run in order for --level all and for the levels they name;
// their findings land in the report's "structure" section. Hook for further
// checks (the converted GPU layout): append one from an init function, e.g.
// structureCheck{Name: "converted", Levels: []string{"converted"}, Run: …};
// its Levels become valid --level values.
var structureChecks = []structureCheck{{
	Name:   "safetensors",
	Levels: []string{levelStructure},
	Run: func(_ context.Context, s *cache.Store, e cache.Entry, r *verify.StructureReport) {
		got := verify.Structure(s, e)
		r.Headers, r.Layout, r.Schema = got.Headers, got.Layout, got.Schema
		for _, p := range got.Problems {
			r.Add(p)
		}
	},
}}

// verifyLevels lists the valid --level values.
func verifyLevels() []string {
	levels := []string{levelDigests}
	for _, c := range structureChecks {
		for _, l := range c.Levels {
			if !slices.Contains(levels, l) {
				levels = append(levels, l)
			}
		}
	}
	return append(levels, levelAll)
}

// verifyResult is one model's verification, as --json prints it: the
// digest report's fields (files omitted at a level without digests) and a
// "structure" section (omitted at --level digests).
type verifyResult struct {
	Name      string                  `json:"name"`
	Format    string                  `json:"format"`
	Revision  string                  `json:"revision"`
	Files     []verify.FileResult     `json:"files,omitempty"`
	Structure *verify.StructureReport `json:"structure,omitempty"`
	OK        bool                    `json:"ok"`
}

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var format, level string
	c := &cobra.Command{
		Use:   "verify [MODEL]",
		Short: "Check cached models (digests, safetensors structure, gpt-oss schema); exit 5 on any problem",
		Long: `Check cached models without modifying them.

  --level digests     re-hash every file against its manifest (sha256, git blob id)
  --level structure   validate every safetensors header, then check the tensors
                      against the config (names, dtypes, shapes, MXFP4 scales) for
                      the hf and original formats
  --level layout      re-check the converted GPU-ready layout (header, every tensor checksum)
  --level all         all of them (default)

Exit status 5 when any model has a problem.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			levels := verifyLevels()
			if !slices.Contains(levels, level) {
				return usageError{fmt.Errorf("--level %q: want one of %s", level, strings.Join(levels, ", "))}
			}
			store, err := g.store()
			if err != nil {
				return err
			}
			var es []cache.Entry
			if len(args) == 1 {
				es, err = matchEntries(store, args[0], format)
			} else {
				es, err = store.List()
			}
			if err != nil {
				return err
			}
			var checks []structureCheck
			for _, c := range structureChecks {
				if level == levelAll || slices.Contains(c.Levels, level) {
					checks = append(checks, c)
				}
			}
			bad := 0
			results := []*verifyResult{}
			out := cmd.OutOrStdout()
			for _, e := range es {
				m := e.Manifest
				res := &verifyResult{Name: m.Name, Format: m.Format, Revision: m.Revision, OK: true}
				results = append(results, res)
				if !g.json {
					fmt.Fprintf(out, "%s (%s) @ %s\n", m.Name, m.Format, short(m.Revision))
				}
				if level == levelDigests || level == levelAll {
					var hashed atomic.Int64
					start := time.Now()
					r, err := verify.Entry(cmd.Context(), store, e, func(n int64) { hashed.Add(n) })
					if err != nil {
						return err
					}
					res.Files, res.OK = r.Files, r.OK
					if !g.json {
						printDigests(out, r, g.quiet, hashed.Load(), time.Since(start))
					}
				}
				if len(checks) > 0 {
					sr := &verify.StructureReport{OK: true}
					for _, c := range checks {
						c.Run(cmd.Context(), store, e, sr)
						if err := cmd.Context().Err(); err != nil {
							return err
						}
					}
					res.Structure = sr
					res.OK = res.OK && sr.OK
					if !g.json {
						printStructure(out, sr, g.quiet)
					}
				}
				if !res.OK {
					bad++
				}
			}
			if g.json {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(results); err != nil {
					return err
				}
			}
			if bad > 0 {
				return &codeError{exitVerify, fmt.Errorf("%d model(s) failed verification", bad)}
			}
			return nil
		},
	}
	c.Flags().StringVar(&format, "format", "", "only this format")
	c.Flags().StringVar(&level, "level", levelAll, "what to check: "+strings.Join(verifyLevels(), ", "))
	return c
}

func printDigests(out io.Writer, r *verify.Report, quiet bool, hashed int64, el time.Duration) {
	for _, f := range r.Files {
		if f.Status == verify.OK {
			if !quiet {
				fmt.Fprintf(out, "  ok      %-48s %10s  sha256:%s\n", f.Path, human(f.Size), short(f.SHA256))
			}
			continue
		}
		fmt.Fprintf(out, "  FAILED  %-48s %s: %s\n", f.Path, f.Status, f.Detail)
	}
	fmt.Fprintf(out, "  %d files, %s hashed in %.1fs\n", len(r.Files), human(hashed), el.Seconds())
}

// printStructure prints a one-line summary, then a table of the problems.
func printStructure(out io.Writer, r *verify.StructureReport, quiet bool) {
	tensors := 0
	for _, h := range r.Headers {
		tensors += h.Tensors
	}
	summary := fmt.Sprintf("%d safetensors headers (%d tensors)", len(r.Headers), tensors)
	if s := r.Schema; s != nil {
		summary += fmt.Sprintf(", %s schema: %d of %d expected tensors found", s.Layout, s.Found, s.Expected)
	}
	if r.OK {
		if !quiet {
			fmt.Fprintf(out, "  structure ok: %s\n", summary)
		}
		return
	}
	fmt.Fprintf(out, "  structure FAILED: %s; %d problem(s):\n", summary, len(r.Problems))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "    CHECK\tSUBJECT\tPROBLEM")
	for _, p := range r.Problems {
		fmt.Fprintf(w, "    %s\t%s\t%s\n", p.Check, p.Subject, p.Detail)
	}
	w.Flush()
}
