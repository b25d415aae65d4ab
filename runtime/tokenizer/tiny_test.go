package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func utf8Valid(s string) bool { return utf8.ValidString(s) }

// tinyJSON is a small GPT-2 style tokenizer.json: byte b is token b, a few
// merges, two specials.
func tinyJSON(t testing.TB) string {
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRuneRef(byte(b)))] = b
	}
	merges := []string{"Ġ t", "h e", "Ġt he", "l l", "e ll"}
	for i, m := range merges {
		vocab[strings.ReplaceAll(m, " ", "")] = 256 + i
	}
	doc := map[string]any{
		"added_tokens":  []map[string]any{{"id": 300, "content": "<|start|>", "special": true}, {"id": 301, "content": "<|end|>", "special": true}},
		"normalizer":    nil,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// byteToRuneRef is GPT-2's bytes_to_unicode computed independently of
// the package's table.
func byteToRuneRef(c byte) rune {
	ok := func(b int) bool { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255) }
	if ok(int(c)) {
		return rune(c)
	}
	n := 0
	for b := 0; b < int(c); b++ {
		if !ok(b) {
			n++
		}
	}
	return rune(256 + n)
}

func tinyTokenizer(t testing.TB) *Tokenizer {
	p := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(p, []byte(tinyJSON(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestTinyMerges checks merge order and the GPT-2 pre-tokenizer on a
// vocabulary small enough to work out by hand.
func TestTinyMerges(t *testing.T) {
	tk := tinyTokenizer(t)
	for _, c := range []struct {
		in   string
		want []int32
	}{
		{" the", []int32{258}},                              // Ġ t (rank 0), h e (1), Ġt he (2)
		{"hello", []int32{257, 259, 'o'}},                   // he (1) before ll (3); "e ll" never applies
		{"ell", []int32{260}},                               // ll (3), then e ll (4)
		{"they're", []int32{'t', 257, 'y', '\'', 'r', 'e'}}, // GPT-2 splits 're
		{"  the", []int32{' ', 258}},
		{"<|start|>", []int32{'<', '|', 's', 't', 'a', 'r', 't', '|', '>'}},
	} {
		if got := tk.EncodeOrdinary(c.in); !slices.Equal(got, c.want) {
			t.Errorf("EncodeOrdinary(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	if got := tk.Encode("<|start|> the<|end|>", "all"); !slices.Equal(got, []int32{300, 258, 301}) {
		t.Errorf("Encode with specials = %v", got)
	}
	if tk.VocabSize() != 302 || !tk.IsSpecial(301) || tk.IsSpecial(258) {
		t.Errorf("VocabSize %d, IsSpecial(301) %v, IsSpecial(258) %v", tk.VocabSize(), tk.IsSpecial(301), tk.IsSpecial(258))
	}
	if tk.TokenBytes(5000) != nil || tk.Decode([]int32{-1, 5000, 258}) != " the" {
		t.Error("unknown ids must decode to nothing")
	}
}

// randomStrings mixes runes from many scripts, whitespace, marks, emoji,
// invalid bytes and truncated sequences.
func randomStrings(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 12345))
	ranges := [][2]rune{{0, 0x7F}, {0x80, 0x2FF}, {0x300, 0x36F}, {0x370, 0x52F}, {0x590, 0x6FF}, {0x900, 0x97F},
		{0xE00, 0xE7F}, {0x1100, 0x11FF}, {0x2000, 0x206F}, {0x3000, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3},
		{0xFE00, 0xFFFF}, {0x1F300, 0x1FAFF}, {0x10000, 0x10FFFF}}
	ws := []string{" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u0085", "\ufeff", "\u3000", "'s", "'LL"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		k := r.IntN(60)
		for j := 0; j < k; j++ {
			switch x := r.IntN(10); {
			case x < 6:
				rg := ranges[r.IntN(len(ranges))]
				b.WriteRune(rg[0] + r.Int32N(rg[1]-rg[0]+1))
			case x < 8:
				b.WriteString(ws[r.IntN(len(ws))])
			case x < 9:
				b.WriteByte(byte(0x80 + r.IntN(128))) // a stray byte
			default:
				e := string(rune(0x10000 + r.Int32N(0x1000)))
				b.WriteString(e[:1+r.IntN(3)]) // a truncated sequence
			}
		}
		out[i] = b.String()
	}
	return out
}
