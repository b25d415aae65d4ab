package main

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/runtime/chat"
)

func newLogitsCmd(g *globalOptions) *cobra.Command {
	var ef engineFlags
	var tokens string
	var all bool
	var top int
	c := &cobra.Command{
		Use:   "logits MODEL --tokens 1,2,3",
		Short: "Print the logits a model gives token ids (last position, or every one with --all)",
		Long: `Feed token ids to a cached model, with no chat format, and print the logits
of the last position (--all: of every position). The text output lists the
largest logits of each position; --json prints every logit:

  {"model": …, "engine": …, "tokens": [...], "positions": [...], "logits": [[vocab floats], ...]}

A check of the engines against reference implementations.`,
		Example: `  gptoss logits 20b --tokens 200006,1428,200008 --json
  gptoss logits 20b --tokens 1,2,3 --all --engine cpu`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tokens == "" {
				return usageError{fmt.Errorf("--tokens is required (comma-separated token ids)")}
			}
			if top <= 0 {
				return usageError{fmt.Errorf("--top %d: want > 0", top)}
			}
			raw, err := parseTokens(tokens, 0)
			if err != nil {
				return err
			}
			if ef.context == 0 {
				// Logits feeds nothing else: no longer KV cache than that.
				ef.context = len(raw)
			}
			lm, err := loadModel(cmd.Context(), g, args[0], ef)
			if err != nil {
				return err
			}
			defer lm.Close()
			cfg := lm.model.Config()
			ids, err := parseTokens(tokens, cfg.VocabSize)
			if err != nil {
				return err
			}
			sess, err := chat.NewSession(lm.model, lm.context)
			if err != nil {
				return err
			}
			defer sess.Close()
			out, err := sess.Logits(cmd.Context(), ids, all)
			if err != nil {
				return err
			}
			vocab := cfg.VocabSize
			first := len(ids) - 1
			if all {
				first = 0
			}
			var rows [][]float32
			var positions []int
			for i := 0; i*vocab < len(out); i++ {
				row := out[i*vocab : (i+1)*vocab]
				for _, v := range row {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						return fmt.Errorf("the %s engine produced a non-finite logit at position %d", lm.model.Engine(), first+i)
					}
				}
				rows = append(rows, row)
				positions = append(positions, first+i)
			}
			w := cmd.OutOrStdout()
			if g.json {
				return json.NewEncoder(w).Encode(map[string]any{"model": lm.name, "engine": lm.model.Engine(),
					"tokens": ids, "positions": positions, "logits": rows})
			}
			for i, row := range rows {
				p := positions[i]
				fmt.Fprintf(w, "position %d (token %d):", p, ids[p])
				for _, id := range topIDs(row, top) {
					fmt.Fprintf(w, " %d:%.4f", id, row[id])
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	ef.add(c)
	c.Flags().StringVar(&tokens, "tokens", "", "token ids to feed, comma-separated")
	c.Flags().BoolVar(&all, "all", false, "logits of every position, not only the last")
	c.Flags().IntVar(&top, "top", 10, "without --json: how many of the largest logits to print per position")
	return c
}

// topIDs returns the ids of the n largest values, largest first.
func topIDs(row []float32, n int) []int {
	ids := make([]int, len(row))
	for i := range ids {
		ids[i] = i
	}
	sort.SliceStable(ids, func(a, b int) bool { return row[ids[a]] > row[ids[b]] })
	return ids[:min(n, len(ids))]
}
