package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/runtime/tokenizer"
)

func newTokenizeCmd(g *globalOptions) *cobra.Command {
	var file string
	var decode, special bool
	c := &cobra.Command{
		Use:   "tokenize (MODEL | --tokenizer FILE)",
		Short: "Turn text on stdin into token ids (or ids into text with --decode)",
		Long: `tokenize reads text on stdin and prints its token ids, space-separated, or
{"ids":[...],"count":N} with --json. Special-token text such as <|start|> is
encoded as plain text unless --special is given. With --decode it reads ids
(space/comma-separated or a JSON array or {"ids":[...]}) and prints the text.

MODEL is a cached model (its snapshot's tokenizer.json); --tokenizer reads a
Hugging Face tokenizer.json directly.`,
		Example: `  echo 'Hello, world!' | gptoss tokenize 20b
  gptoss tokenize --tokenizer tokenizer.json --json < prompt.txt
  echo '13225 11 2375 0' | gptoss tokenize 20b --decode`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (file != "") {
				return usageError{errors.New("give a MODEL or --tokenizer FILE (one of them)")}
			}
			if file == "" {
				var err error
				if file, err = modelTokenizer(g, args[0]); err != nil {
					return err
				}
			}
			tok, err := tokenizer.Load(file)
			if errors.Is(err, fs.ErrNotExist) {
				return &codeError{exitNotFound, err}
			} else if err != nil {
				return &codeError{exitError, err} // not a network error, whatever it wraps
			}
			in, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
			w := bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10)
			if decode {
				ids, err := parseIDs(string(in), tok.VocabSize())
				if err != nil {
					return usageError{err}
				}
				text := tok.Decode(ids)
				if g.json {
					b, _ := json.Marshal(map[string]any{"text": text, "count": len(ids)})
					w.Write(append(b, '\n'))
				} else {
					w.WriteString(text)
				}
				return w.Flush()
			}
			var ids []int32
			if special {
				ids = tok.Encode(string(in), "all")
			} else {
				ids = tok.EncodeOrdinary(string(in))
			}
			writeIDs(w, ids, g.json)
			return w.Flush()
		},
	}
	c.Flags().StringVar(&file, "tokenizer", "", "a Hugging Face tokenizer.json to use instead of a cached model's")
	c.Flags().BoolVar(&decode, "decode", false, "read token ids on stdin and print their text")
	c.Flags().BoolVar(&special, "special", false, "encode special-token text (<|start|>, …) as the special ids")
	return c
}

// modelTokenizer finds the tokenizer.json of a cached model: the newest
// entry that has one.
func modelTokenizer(g *globalOptions, arg string) (string, error) {
	store, es, err := g.cached(arg, "")
	if err != nil {
		return "", err
	}
	var formats []string
	for _, e := range es {
		p := filepath.Join(store.SnapshotDir(e.Manifest), "tokenizer.json")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		formats = append(formats, e.Manifest.Format)
	}
	return "", fmt.Errorf("%s has no tokenizer.json in the cache (formats %s); pull the hf format (gptoss pull %s) or pass --tokenizer FILE: %w",
		arg, strings.Join(formats, ", "), arg, registry.ErrNotFound)
}

func writeIDs(w *bufio.Writer, ids []int32, asJSON bool) {
	var b []byte
	if asJSON {
		b = append(b, `{"ids":[`...)
	}
	for i, id := range ids {
		if i > 0 {
			if asJSON {
				b = append(b, ',')
			} else {
				b = append(b, ' ')
			}
		}
		b = strconv.AppendInt(b, int64(id), 10)
		if len(b) > 32<<10 {
			w.Write(b)
			b = b[:0]
		}
	}
	if asJSON {
		b = append(b, `],"count":`...)
		b = strconv.AppendInt(b, int64(len(ids)), 10)
		b = append(b, '}')
	}
	w.Write(append(b, '\n'))
}

// parseIDs reads ids: whitespace/comma separated, a JSON array, or a
// JSON object with "ids".
func parseIDs(s string, vocab int) ([]int32, error) {
	s = strings.TrimSpace(s)
	var ids []int32
	switch {
	case strings.HasPrefix(s, "{"):
		var v struct {
			IDs *[]int32 `json:"ids"`
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil || v.IDs == nil {
			return nil, fmt.Errorf("stdin: want {\"ids\":[...]}: %v", err)
		}
		ids = *v.IDs
	case strings.HasPrefix(s, "["):
		if err := json.Unmarshal([]byte(s), &ids); err != nil {
			return nil, fmt.Errorf("stdin: want a JSON array of ids: %w", err)
		}
	default:
		for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' }) {
			n, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("stdin: %q is not a token id", f)
			}
			ids = append(ids, int32(n))
		}
	}
	for _, id := range ids {
		if id < 0 || int(id) >= vocab {
			return nil, fmt.Errorf("stdin: token id %d is out of range (vocabulary %d)", id, vocab)
		}
	}
	return ids, nil
}
