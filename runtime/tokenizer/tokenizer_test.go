package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gptoss/gptoss/runtime/tokenizer/tiktokentest"
)

var (
	o200kOnce sync.Once
	o200kTok  *Tokenizer
	o200kErr  error
)

// o200k loads the o200k_harmony tokenizer.json built from js-tiktoken's
// ranks (once per test binary).
func o200k(tb testing.TB) (*Tokenizer, *tiktokentest.Oracle) {
	tb.Helper()
	o := tiktokentest.Load(tb)
	o200kOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokenizer-test")
		if err != nil {
			o200kErr = err
			return
		}
		defer os.RemoveAll(dir)
		o200kTok, o200kErr = Load(o.WriteTokenizerJSON(tb, dir, false))
	})
	if o200kErr != nil {
		tb.Fatal(o200kErr)
	}
	if o200kTok == nil {
		tb.Fatal("building the o200k tokenizer.json failed in an earlier test")
	}
	return o200kTok, o
}

var (
	refOnce  sync.Once
	refTexts []string
	ref      *tiktokentest.Reference
)

// reference is js-tiktoken's answer for the corpus, once per test binary.
func reference(tb testing.TB) ([]string, *tiktokentest.Reference) {
	tb.Helper()
	o := tiktokentest.Load(tb)
	refOnce.Do(func() {
		texts := corpus()
		ref = o.Reference(tb, texts)
		refTexts = texts
	})
	if ref == nil {
		tb.Fatal("js-tiktoken failed in an earlier test")
	}
	return refTexts, ref
}

func compare(t *testing.T, name string, texts []string, got func(string) []int32, want [][]int32) (tokens int) {
	t.Helper()
	bad := 0
	for i, s := range texts {
		g := got(s)
		tokens += len(want[i])
		if !slices.Equal(g, want[i]) {
			if bad++; bad <= 5 {
				t.Errorf("%s: %q:\n got %v\nwant %v", name, s, g, want[i])
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d texts differ", name, bad, len(texts))
	}
	return tokens
}

// TestMatchesJSTiktoken compares ids with js-tiktoken's encode on the
// whole corpus, for every way to load o200k: tokenizer.json with pair
// merges, with "a b" merges, and the tiktoken ranks file.
func TestMatchesJSTiktoken(t *testing.T) {
	tok, o := o200k(t)
	if o.NumRanks != 199998 {
		t.Errorf("js-tiktoken has %d ranks, want 199998 (GPT-OSS.md §5)", o.NumRanks)
	}
	if o.Pattern != o200kPatternExpanded {
		t.Errorf("js-tiktoken's pattern is not the one this package implements:\n%s", o.Pattern)
	}
	if tok.VocabSize() != 201088 {
		t.Errorf("VocabSize %d, want 201088", tok.VocabSize())
	}
	texts, ref := reference(t)
	want := ref.Ordinary
	n := compare(t, "tokenizer.json", texts, tok.EncodeOrdinary, want)
	t.Logf("tokenizer.json (pair merges): %d texts, %d tokens identical to js-tiktoken", len(texts), n)

	dir := t.TempDir()
	strTok, err := Load(o.WriteTokenizerJSON(t, dir, true))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "string merges", texts, strTok.EncodeOrdinary, want)
	tk, err := LoadTiktoken(o.WriteRanks(t, dir), HarmonySpecials())
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "tiktoken file", texts, tk.EncodeOrdinary, want)

	// With every special recognised.
	wantAll := ref.All
	n = compare(t, "all specials", texts, func(s string) []int32 { return tok.Encode(s, "all") }, wantAll)
	t.Logf("Encode(all): %d texts, %d tokens identical to js-tiktoken", len(texts), n)
	compare(t, "all specials, tiktoken file", texts, func(s string) []int32 { return tk.Encode(s, "all") }, wantAll)

	for i, s := range texts {
		if got := tok.Decode(want[i]); got != s {
			t.Fatalf("Decode(js ids of %q) = %q", s, got)
		}
	}
}

// TestSplitMatchesJSRegex compares the hand-written pre-tokenizer with the
// pattern run by JavaScript's regex engine, piece by piece.
func TestSplitMatchesJSRegex(t *testing.T) {
	texts, ref := reference(t)
	want := ref.Pieces
	bad := 0
	for i, s := range texts {
		got := splitAll(o200kNext, s)
		if !slices.Equal(got, want[i]) {
			if bad++; bad <= 5 {
				t.Errorf("%q:\n got %q\nwant %q", s, got, want[i])
			}
		}
	}
	t.Logf("%d texts split like JavaScript's regex", len(texts)-bad)
	for i, s := range texts {
		got := splitAll(gpt2Next, s)
		if !slices.Equal(got, ref.GPT2Pieces[i]) {
			if bad++; bad <= 5 {
				t.Errorf("GPT-2 %q:\n got %q\nwant %q", s, got, ref.GPT2Pieces[i])
			}
		}
	}
	if gpt2Pattern != tiktokentest.GPT2Pattern {
		t.Error("gpt2Pattern differs from the reference's")
	}
}

func splitAll(f splitter, s string) []string {
	initClasses()
	var out []string
	for i := 0; i < len(s); {
		e := f(s, i)
		if e <= i {
			panic("splitter did not advance")
		}
		out = append(out, s[i:e])
		i = e
	}
	return out
}

// TestRustSemantics pins the cases where tiktoken (Rust's regex crate)
// and JavaScript disagree; this package follows Rust.
func TestRustSemantics(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
		why  string
	}{
		{"a\u0085\u0085b", []string{"a", "\u0085", "\u0085b"}, "U+0085 is White_Space in Rust (not in JS)"},
		{"a \ufeffb", []string{"a", " \ufeff", "b"}, "U+FEFF is not White_Space in Rust (it is \\s in JS)"},
		{"it'ſ", []string{"it'ſ"}, "(?i:'s) folds ſ in Rust"},
		{"IT'S", []string{"IT'S"}, "case-insensitive contraction after upper case"},
		{"   x", []string{"  ", " x"}, `\s+(?!\S) leaves the last space to the word`},
		{"x   ", []string{"x", "   "}, `\s+(?!\S) takes the whole run at the end`},
		{" \n \n  y", []string{" \n \n", " ", " y"}, `\s*[\r\n]+ ends at the last newline`},
	} {
		if got := splitAll(o200kNext, c.in); !slices.Equal(got, c.want) {
			t.Errorf("%s: split(%q) = %q, want %q", c.why, c.in, got, c.want)
		}
	}
}

// TestSpecials checks the Harmony specials and allowed-special handling.
func TestSpecials(t *testing.T) {
	tok, _ := o200k(t)
	for name, id := range map[string]int32{"<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008,
		"<|channel|>": 200005, "<|return|>": 200002, "<|call|>": 200012, "<|constrain|>": 200003,
		"<|startoftext|>": 199998, "<|endoftext|>": 199999, "<|reserved_201087|>": 201087} {
		got, ok := tok.SpecialID(name)
		if !ok || got != id {
			t.Errorf("SpecialID(%s) = %d %v, want %d", name, got, ok, id)
		}
		if !tok.IsSpecial(id) || string(tok.TokenBytes(id)) != name {
			t.Errorf("id %d: IsSpecial %v, bytes %q", id, tok.IsSpecial(id), tok.TokenBytes(id))
		}
	}
	if _, ok := tok.SpecialID("<|nope|>"); ok {
		t.Error("SpecialID of an unknown name succeeded")
	}
	if tok.IsSpecial(1000) || tok.IsSpecial(-1) || tok.IsSpecial(1<<30) {
		t.Error("IsSpecial of an ordinary/out-of-range id")
	}
	s := "<|start|>user<|message|>hi <|end|>"
	start, _ := tok.SpecialID("<|start|>")
	end, _ := tok.SpecialID("<|end|>")
	only := tok.Encode(s, "<|start|>")
	if only[0] != start || slices.Contains(only, end) {
		t.Errorf("Encode(s, <|start|>) = %v: want only <|start|> special", only)
	}
	if got := tok.Encode(s); !slices.Equal(got, tok.EncodeOrdinary(s)) || slices.Contains(got, start) {
		t.Errorf("Encode without allowed specials = %v, want the ordinary encoding", got)
	}
	all := tok.Encode(s, "all")
	if all[0] != start || all[len(all)-1] != end || tok.Decode(all) != s {
		t.Errorf("Encode(all) = %v (decodes to %q)", all, tok.Decode(all))
	}
	if got := tok.Encode(s, "<|nope|>"); !slices.Equal(got, tok.EncodeOrdinary(s)) {
		t.Errorf("an unknown allowed name changed the encoding: %v", got)
	}
}

// TestHeapMatchesScan checks the two merge loops agree, on long pieces
// where the heap is used and on short ones.
func TestHeapMatchesScan(t *testing.T) {
	tok, _ := o200k(t)
	texts := randomTexts(7, 300)
	texts = append(texts, strings.Repeat(" ", 500), strings.Repeat("a", 333), strings.Repeat("ab", 200),
		strings.Repeat("日本", 100), strings.Repeat("=-", 150), strings.Repeat("\n", 300))
	var sp []part
	for _, s := range texts {
		for _, p := range []string{s, strings.ReplaceAll(s, " ", "")} {
			if len(p) < 2 {
				continue
			}
			a := tok.encodeScan(p, nil, &sp)
			b := tok.encodeHeap(p, nil)
			if !slices.Equal(a, b) {
				t.Fatalf("%q: scan %v, heap %v", p, a, b)
			}
		}
	}
}

// TestRoundTrip: Decode(EncodeOrdinary(s)) == s for random strings,
// including invalid UTF-8, lone surrogate encodings and every script.
func TestRoundTrip(t *testing.T) {
	tok, _ := o200k(t)
	small := tinyTokenizer(t)
	for i, s := range randomStrings(3, 3000) {
		for _, tk := range []*Tokenizer{tok, small} {
			ids := tk.EncodeOrdinary(s)
			if got := tk.Decode(ids); got != s {
				t.Fatalf("text %d: Decode(EncodeOrdinary(%q)) = %q", i, s, got)
			}
			if got := tk.Decode(tk.Encode(s, "all")); got != s {
				t.Fatalf("text %d: Decode(Encode(%q, all)) = %q", i, s, got)
			}
		}
	}
}

// TestStreamDecoder feeds tokens one by one: every output is valid UTF-8
// and the outputs join to the text; a character split across tokens comes
// out whole once its last byte arrives.
func TestStreamDecoder(t *testing.T) {
	tk := tinyTokenizer(t) // one token per byte: every multi-byte rune is split
	for _, s := range append(handTexts, "é", "😀", "👨‍👩‍👧‍👦", "日本語", "a\u0301") {
		d := tk.NewStreamDecoder()
		var b strings.Builder
		for _, id := range tk.EncodeOrdinary(s) {
			out := d.Add(id)
			if !utf8Valid(out) {
				t.Fatalf("%q: Add gave invalid UTF-8 %q", s, out)
			}
			b.WriteString(out)
		}
		b.WriteString(d.Flush())
		if b.String() != s {
			t.Fatalf("stream of %q gave %q", s, b.String())
		}
	}
	d := tk.NewStreamDecoder()
	emoji := "😀" // 4 bytes: 3 held back, the 4th completes it
	for i := 0; i < 3; i++ {
		if out := d.Add(tk.byteID[emoji[i]]); out != "" {
			t.Fatalf("byte %d of %q: Add = %q, want it held back", i, emoji, out)
		}
	}
	if out := d.Add(tk.byteID[emoji[3]]); out != emoji {
		t.Fatalf("last byte: Add = %q, want %q", out, emoji)
	}
	// A sequence that can never complete comes out as U+FFFD.
	if out := d.Add(tk.byteID[0xFF]); out != "\uFFFD" {
		t.Errorf("0xFF: %q", out)
	}
	d.Add(tk.byteID[0xE6]) // first byte of 日
	if out := d.Add(tk.byteID['x']); out != "\uFFFDx" {
		t.Errorf("cut sequence then x: %q", out)
	}
	d.Add(tk.byteID[0xE6])
	if out := d.Flush(); out != "\uFFFD" {
		t.Errorf("Flush of a partial sequence = %q", out)
	}
	// Special tokens stream as their text; with o200k a multi-byte
	// character also spans tokens (some CJK are 2 tokens).
	tok, _ := o200k(t)
	s := "<|start|>assistant<|message|>混合 😀 👨‍👩‍👧‍👦 ⅷ ꙮ𝔘𝔫𝔦𝔠𝔬𝔡𝔢<|end|>"
	d = tok.NewStreamDecoder()
	var b strings.Builder
	split := false
	for _, id := range tok.Encode(s, "all") {
		out := d.Add(id)
		if !utf8Valid(out) {
			t.Fatalf("o200k: invalid UTF-8 %q", out)
		}
		if !utf8Valid(string(tok.TokenBytes(id))) {
			split = true
		}
		b.WriteString(out)
	}
	if b.String()+d.Flush() != s {
		t.Fatalf("o200k stream gave %q", b.String())
	}
	if !split {
		t.Error("no token of the o200k text was a partial UTF-8 sequence; the test proves nothing")
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := tinyJSON(t)
	for _, c := range []struct{ name, body, want string }{
		{"notjson", "{", "not a tokenizer.json"},
		{"wordpiece", strings.Replace(good, `"type":"BPE"`, `"type":"WordPiece"`, 1), `model type "WordPiece"`},
		{"regex", strings.Replace(good, `"use_regex":true`, `"use_regex":false`, 1), "ByteLevel without use_regex"},
		{"split", strings.Replace(good, `"pre_tokenizer":{"add_prefix_space":false,"type":"ByteLevel","use_regex":true}`,
			`"pre_tokenizer":{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\w+"},"behavior":"Isolated"},{"type":"ByteLevel","use_regex":false}]}`, 1),
			"is not one this tokenizer implements"},
		{"nobyte", strings.Replace(good, `"A":65,`, ``, 1), "no token for byte 0x41"},
		{"merge", strings.Replace(good, `"merges":[`, `"merges":["Ġ zz",`, 1), `is not in the vocab`},
		{"normalizer", strings.Replace(good, `"normalizer":null`, `"normalizer":{"type":"NFC"}`, 1), "normalizer"},
	} {
		_, err := Load(write(c.name+".json", c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err %v, want one line containing %q", c.name, err, c.want)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file loaded")
	}
	if _, err := LoadTiktoken(write("bad.tiktoken", "IQ== 0\n!!! 1\n"), nil); err == nil || !strings.Contains(err.Error(), "bad base64") {
		t.Errorf("bad tiktoken: %v", err)
	}
}

func TestHarmonySpecials(t *testing.T) {
	got, want := HarmonySpecials(), tiktokentest.Specials()
	if len(got) != len(want) || len(got) != 201088-199998 {
		t.Fatalf("%d specials, want %d", len(got), len(want))
	}
	for s, id := range want {
		if got[s] != id {
			t.Errorf("%s: %d, want %d", s, got[s], id)
		}
	}
	if O200kPattern != tiktokentest.HFPattern {
		t.Error("O200kPattern differs from GPT-OSS.md §5")
	}
}

// TestConcurrent encodes from many goroutines with one Tokenizer (shared
// cache and learnt bits) and wants the sequential answer every time.
func TestConcurrent(t *testing.T) {
	tok := tinyTokenizer(t)
	texts := randomStrings(11, 200)
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i] = tok.EncodeOrdinary(s)
	}
	fresh := tinyTokenizer(t)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range texts {
				j := (i + g*25) % len(texts)
				if got := fresh.EncodeOrdinary(texts[j]); !slices.Equal(got, want[j]) {
					t.Errorf("goroutine %d, text %d: %v, want %v", g, j, got, want[j])
					return
				}
			}
		}()
	}
	wg.Wait()
}
