// Package tiktokentest is the reference the tokenizer is tested against:
// the npm package js-tiktoken (1.0.21), run with node. It extracts the
// o200k_base ranks shipped inside js-tiktoken, builds from them a Hugging
// Face tokenizer.json the way Hugging Face's tiktoken converter does, and
// encodes texts with js-tiktoken itself.
//
// js-tiktoken is found in $GPTOSS_NPM_DIR (default .tools/npm at the
// repository root, where .ci/run installs it). Without it (or without
// node) the tests that need it skip, and fail when $CI is set.
package tiktokentest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gptoss/gptoss/internal/testproc"
)

// HFPattern is the o200k pre-tokenizer regex as GPT-OSS.md §5 and the
// Hugging Face tokenizer.json write it (js-tiktoken spells the
// case-insensitive group out).
const HFPattern = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// Specials are o200k_harmony's special tokens (GPT-OSS.md §5), written out
// here independently of the package under test.
func Specials() map[string]int32 {
	m := map[string]int32{}
	for id := int32(199998); id <= 201087; id++ {
		m["<|reserved_"+strconv.Itoa(int(id))+"|>"] = id
	}
	for name, id := range map[string]int32{"<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|return|>": 200002,
		"<|constrain|>": 200003, "<|channel|>": 200005, "<|start|>": 200006, "<|end|>": 200007,
		"<|message|>": 200008, "<|call|>": 200012} {
		delete(m, "<|reserved_"+strconv.Itoa(int(id))+"|>")
		m[name] = id
	}
	return m
}

// Oracle is js-tiktoken's o200k_base with the o200k_harmony specials.
type Oracle struct {
	// Dir is the npm prefix holding node_modules/js-tiktoken.
	Dir string
	// Pattern is js-tiktoken's pre-tokenizer regex for o200k_base.
	Pattern string
	// Ranks is the o200k_base.tiktoken file (base64 token, rank per line).
	Ranks []byte
	// NumRanks is the number of ranked (byte-level) tokens.
	NumRanks int

	mu   sync.Mutex
	json map[bool][]byte
}

var (
	once    sync.Once
	oracle  *Oracle
	loadErr error
	missing string
)

// NPMDir returns the npm prefix holding js-tiktoken, or skips the test
// (fails it when $CI is set) when js-tiktoken or node is missing.
func NPMDir(tb testing.TB) string {
	tb.Helper()
	return testproc.NPMDir(tb, "js-tiktoken")
}

// Load extracts the ranks from js-tiktoken, once per test binary. With
// $GPTOSS_O200K_RANKS naming an o200k_base.tiktoken file it reads the ranks
// from there instead and needs no node (for benchmarks on other machines;
// Reference is then unavailable).
func Load(tb testing.TB) *Oracle {
	tb.Helper()
	if p := os.Getenv("GPTOSS_O200K_RANKS"); p != "" {
		once.Do(func() {
			b, err := os.ReadFile(p)
			oracle, loadErr = &Oracle{Ranks: b, NumRanks: bytes.Count(b, []byte{'\n'})}, err
		})
		if loadErr != nil {
			tb.Fatal(loadErr)
		}
		return oracle
	}
	dir := NPMDir(tb)
	once.Do(func() { oracle, loadErr = load(dir) })
	if loadErr != nil {
		tb.Fatal(loadErr)
	}
	return oracle
}

const dumpJS = `
const r = require("js-tiktoken/ranks/o200k_base");
const lines = [];
for (const x of r.bpe_ranks.split("\n").filter(Boolean)) {
  const [_, off, ...toks] = x.split(" ");
  const o = Number.parseInt(off, 10);
  toks.forEach((t, i) => lines.push(t + " " + (o + i)));
}
process.stdout.write(JSON.stringify({pat: r.pat_str, ranks: lines.join("\n") + "\n"}));
`

func node(dir, script string, stdin []byte) ([]byte, error) {
	c := exec.Command("node", "-e", script)
	c.Dir = dir
	c.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return nil, fmt.Errorf("node: %v: %s", err, stderr.String())
	}
	return out, nil
}

func load(dir string) (*Oracle, error) {
	out, err := node(dir, dumpJS, nil)
	if err != nil {
		return nil, err
	}
	var d struct{ Pat, Ranks string }
	if err := json.Unmarshal(out, &d); err != nil {
		return nil, fmt.Errorf("js-tiktoken ranks: %w", err)
	}
	return &Oracle{Dir: dir, Pattern: d.Pat, Ranks: []byte(d.Ranks), NumRanks: strings.Count(d.Ranks, "\n")}, nil
}

// WriteRanks writes o200k_base.tiktoken into dir and returns its path.
func (o *Oracle) WriteRanks(tb testing.TB, dir string) string {
	tb.Helper()
	p := filepath.Join(dir, "o200k_base.tiktoken")
	if err := os.WriteFile(p, o.Ranks, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// WriteTokenizerJSON writes a Hugging Face tokenizer.json of
// o200k_harmony into dir and returns its path: the vocab in the byte-level
// alphabet, merges derived from the ranks as Hugging Face's converter does
// ("a b" strings when stringMerges, else [a, b] pairs), the Harmony
// specials as added tokens, and the Split(o200k regex) + ByteLevel
// pre-tokenizer of the real gpt-oss file.
func (o *Oracle) WriteTokenizerJSON(tb testing.TB, dir string, stringMerges bool) string {
	tb.Helper()
	o.mu.Lock()
	b, ok := o.json[stringMerges]
	if !ok {
		var err error
		if b, err = o.buildJSON(stringMerges); err != nil {
			o.mu.Unlock()
			tb.Fatal(err)
		}
		if o.json == nil {
			o.json = map[bool][]byte{}
		}
		o.json[stringMerges] = b
	}
	o.mu.Unlock()
	p := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// ranks parses the tiktoken file.
func (o *Oracle) ranks() (map[string]int, error) {
	m := make(map[string]int, o.NumRanks)
	for _, l := range strings.Split(strings.TrimSpace(string(o.Ranks)), "\n") {
		tok, r, _ := strings.Cut(l, " ")
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(r)
		if err != nil {
			return nil, err
		}
		m[string(b)] = n
	}
	return m, nil
}

// split merges tok with tiktoken's rule using only ranks below maxRank and
// returns the parts left: for a token of rank maxRank, its two halves.
func split(ranks map[string]int, tok string, maxRank int) []string {
	bounds := make([]int, len(tok)+1) // part i is tok[bounds[i]:bounds[i+1]]
	for i := range bounds {
		bounds[i] = i
	}
	for {
		best, bi := maxRank, -1
		for i := 0; i+2 < len(bounds); i++ {
			if r, ok := ranks[tok[bounds[i]:bounds[i+2]]]; ok && r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		bounds = append(bounds[:bi+1], bounds[bi+2:]...)
	}
	parts := make([]string, len(bounds)-1)
	for i := range parts {
		parts[i] = tok[bounds[i]:bounds[i+1]]
	}
	return parts
}

func byteLevel(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteRune(s[i]))
	}
	return b.String()
}

// byteRune is GPT-2's bytes_to_unicode, written out again here so the test
// does not lean on the code under test.
func byteRune(c byte) rune {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	if printable(int(c)) {
		return rune(c)
	}
	n := 0
	for b := 0; b < int(c); b++ {
		if !printable(b) {
			n++
		}
	}
	return rune(256 + n)
}

func (o *Oracle) buildJSON(stringMerges bool) ([]byte, error) {
	ranks, err := o.ranks()
	if err != nil {
		return nil, err
	}
	type tokRank struct {
		tok  string
		rank int
	}
	var multi []tokRank
	vocab := make(map[string]int, len(ranks))
	for tok, r := range ranks {
		vocab[byteLevel(tok)] = r
		if len(tok) > 1 {
			multi = append(multi, tokRank{tok, r})
		}
	}
	sort.Slice(multi, func(i, j int) bool { return multi[i].rank < multi[j].rank })
	var merges []any
	for _, tr := range multi {
		p := split(ranks, tr.tok, tr.rank)
		if len(p) != 2 {
			return nil, fmt.Errorf("token %q (rank %d) does not split into a pair: %q", tr.tok, tr.rank, p)
		}
		if stringMerges {
			merges = append(merges, byteLevel(p[0])+" "+byteLevel(p[1]))
		} else {
			merges = append(merges, []string{byteLevel(p[0]), byteLevel(p[1])})
		}
	}
	type added struct {
		ID         int32  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var adds []added
	for s, id := range Specials() {
		adds = append(adds, added{ID: id, Content: s, Special: true})
	}
	sort.Slice(adds, func(i, j int) bool { return adds[i].ID < adds[j].ID })
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": adds,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": HFPattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

const referenceJS = `
const { Tiktoken } = require("js-tiktoken/lite");
const r = require("js-tiktoken/ranks/o200k_base");
const req = JSON.parse(require("fs").readFileSync(0, "utf8"));
const enc = new Tiktoken({ ...r, special_tokens: req.specials });
const re = new RegExp(r.pat_str, "ug");
process.stdout.write(JSON.stringify({
  ordinary: req.texts.map((t) => enc.encode(t, [], [])),
  all: req.texts.map((t) => t.includes("<|") ? enc.encode(t, "all") : null),
  pieces: req.texts.map((t) => Array.from(t.matchAll(re), (m) => m[0])),
  gpt2Pieces: req.texts.map((t) => Array.from(t.matchAll(new RegExp(req.gpt2, "ug")), (m) => m[0])),
}));
`

// Reference is what js-tiktoken makes of a list of texts.
type Reference struct {
	// Ordinary: encode(text, [], []) — special-token text as plain text.
	Ordinary [][]int32
	// All: encode(text, "all") — every Harmony special recognised; nil
	// for a text without "<|" (it would be Ordinary).
	All [][]int32
	// Pieces: the o200k regex's matches (JavaScript's regex engine).
	Pieces [][]string
	// GPT2Pieces: the GPT-2 regex's (GPT2Pattern) matches.
	GPT2Pieces [][]string
}

// GPT2Pattern is the GPT-2 pre-tokenizer regex (Hugging Face's ByteLevel
// with use_regex).
const GPT2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// Reference runs js-tiktoken on texts (valid UTF-8) in one node process.
func (o *Oracle) Reference(tb testing.TB, texts []string) *Reference {
	tb.Helper()
	req, err := json.Marshal(map[string]any{"texts": texts, "specials": Specials(), "gpt2": GPT2Pattern})
	if err != nil {
		tb.Fatal(err)
	}
	out, err := node(o.Dir, referenceJS, req)
	if err != nil {
		tb.Fatal(err)
	}
	var ref Reference
	if err := json.Unmarshal(out, &ref); err != nil {
		tb.Fatalf("js-tiktoken output: %v", err)
	}
	if len(ref.Ordinary) != len(texts) || len(ref.All) != len(texts) || len(ref.Pieces) != len(texts) || len(ref.GPT2Pieces) != len(texts) {
		tb.Fatalf("js-tiktoken answered for %d/%d/%d texts, want %d", len(ref.Ordinary), len(ref.All), len(ref.Pieces), len(texts))
	}
	for i, ids := range ref.All {
		if ids == nil {
			ref.All[i] = ref.Ordinary[i]
		}
	}
	return &ref
}
