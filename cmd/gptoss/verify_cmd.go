package main

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/verify"
)

func newVerifyCmd(g *globalOptions) *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "verify [MODEL]",
		Short: "Re-hash cached models against their manifests; exit 5 on any problem",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			bad := 0
			var reports []*verify.Report
			for _, e := range es {
				var hashed atomic.Int64
				start := time.Now()
				r, err := verify.Entry(cmd.Context(), store, e, func(n int64) { hashed.Add(n) })
				if err != nil {
					return err
				}
				reports = append(reports, r)
				if g.json {
					continue
				}
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "%s (%s) @ %s\n", r.Name, r.Format, short(r.Revision))
				for _, f := range r.Files {
					if f.Status == verify.OK {
						if !g.quiet {
							fmt.Fprintf(out, "  ok      %-48s %10s  sha256:%s\n", f.Path, human(f.Size), short(f.SHA256))
						}
						continue
					}
					fmt.Fprintf(out, "  FAILED  %-48s %s: %s\n", f.Path, f.Status, f.Detail)
				}
				el := time.Since(start).Seconds()
				fmt.Fprintf(out, "  %d files, %s hashed in %.1fs\n", len(r.Files), human(hashed.Load()), el)
			}
			for _, r := range reports {
				if !r.OK {
					bad++
				}
			}
			if g.json {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(reports); err != nil {
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
	return c
}
