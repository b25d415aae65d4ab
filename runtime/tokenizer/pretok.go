package tokenizer

import (
	"sync"
	"unicode"
	"unicode/utf8"
)

// Character classes of the pre-tokenizer patterns, one bit each.
const (
	cL    = 1 << iota // \p{L}
	cN                // \p{N}
	cS                // \s (Unicode White_Space, as Rust's regex crate)
	cU                // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	cW                // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
	cCRLF             // \r or \n
)

// asciiClass holds the class bits of ASCII (filled by init).
var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := range asciiClass {
		asciiClass[r] = classOf(rune(r))
	}
}

var (
	bmpOnce  sync.Once
	bmpClass []uint8 // class bits of every rune below tableRunes
)

// tableRunes: the class table covers the BMP and planes 1 (emoji, historic
// scripts) and 2 (CJK extensions): 192 KiB.
const tableRunes = 0x30000

// classOf computes a rune's class bits from the unicode tables.
func classOf(r rune) uint8 {
	var c uint8
	switch {
	case unicode.Is(unicode.Lu, r), unicode.Is(unicode.Lt, r):
		c = cL | cU
	case unicode.Is(unicode.Ll, r):
		c = cL | cW
	case unicode.Is(unicode.Lm, r), unicode.Is(unicode.Lo, r):
		c = cL | cU | cW
	case unicode.Is(unicode.M, r):
		c = cU | cW
	case unicode.Is(unicode.N, r):
		c = cN
	case unicode.IsSpace(r): // \t \n \v \f \r space U+0085 U+00A0 and White_Space
		c = cS
		if r == '\r' || r == '\n' {
			c |= cCRLF
		}
	}
	return c
}

func initClasses() {
	bmpOnce.Do(func() {
		t := make([]uint8, tableRunes)
		for r := range t {
			if r >= 0xD800 && r < 0xE000 {
				continue // surrogates never decode
			}
			t[r] = classOf(rune(r))
		}
		bmpClass = t
	})
}

// at returns the class bits and byte width of the rune at s[i] (i < len(s)).
// A byte that is not valid UTF-8 has no class (like a symbol) and width 1.
func at(s string, i int) (uint8, int) {
	b := s[i]
	if b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	// Two- and three-byte sequences decoded inline (the common case).
	switch {
	case b >= 0xC2 && b < 0xE0 && i+1 < len(s):
		if c := s[i+1]; c&0xC0 == 0x80 {
			return bmpClass[rune(b&0x1F)<<6|rune(c&0x3F)], 2
		}
	case b >= 0xE0 && b < 0xF0 && i+2 < len(s):
		c1, c2 := s[i+1], s[i+2]
		lo, hi := byte(0x80), byte(0xBF)
		if b == 0xE0 {
			lo = 0xA0 // no overlong forms
		} else if b == 0xED {
			hi = 0x9F // no surrogates
		}
		if c1 >= lo && c1 <= hi && c2&0xC0 == 0x80 {
			return bmpClass[rune(b&0x0F)<<12|rune(c1&0x3F)<<6|rune(c2&0x3F)], 3
		}
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	if r < tableRunes {
		if r == utf8.RuneError && n == 1 {
			return 0, 1
		}
		return bmpClass[r], n
	}
	return classOf(r), n
}

// before returns the class bits and width of the rune that ends at s[i] (i > 0).
func before(s string, i int) (uint8, int) {
	if b := s[i-1]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	r, n := utf8.DecodeLastRuneInString(s[:i])
	if r < tableRunes {
		if r == utf8.RuneError && n == 1 {
			return 0, 1
		}
		return bmpClass[r], n
	}
	return classOf(r), n
}

// run returns the end of the longest run of runes from i that have any of
// the bits in want.
func run(s string, i int, want uint8) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if asciiClass[b]&want == 0 {
				break
			}
			i++
			continue
		}
		c, n := at(s, i)
		if c&want == 0 {
			break
		}
		i += n
	}
	return i
}

// splitter returns the end of the pre-tokenizer piece that starts at i
// (i < len(s)); it always returns more than i.
type splitter func(s string, i int) int

// o200kNext matches the o200k pattern (GPT-OSS.md §5) at i: the seven
// alternatives are tried in order, each with the backtracking a regex
// engine would do, so the result is the leftmost-first match.
func o200kNext(s string, i int) int {
	c0, n0 := at(s, i)
	// [^\r\n\p{L}\p{N}]? — the optional prefix of alternatives 1 and 2.
	prefix := c0&(cCRLF|cL|cN) == 0
	// 1. P?[U]*[W]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
	if prefix {
		if e := upperLower(s, i+n0); e >= 0 {
			return contraction(s, e)
		}
	}
	if e := upperLower(s, i); e >= 0 {
		return contraction(s, e)
	}
	// 2. P?[U]+[W]*(?i:…)?
	if prefix && i+n0 < len(s) {
		if c, _ := at(s, i+n0); c&cU != 0 {
			return contraction(s, run(s, run(s, i+n0, cU), cW))
		}
	}
	if c0&cU != 0 {
		return contraction(s, run(s, run(s, i, cU), cW))
	}
	// 3. \p{N}{1,3}
	if c0&cN != 0 {
		e := i + n0
		for k := 0; k < 2 && e < len(s); k++ {
			c, n := at(s, e)
			if c&cN == 0 {
				break
			}
			e += n
		}
		return e
	}
	// 4. ' '?[^\s\p{L}\p{N}]+[\r\n/]*
	{
		j := i
		if s[i] == ' ' {
			j++
		}
		if j < len(s) {
			if c, _ := at(s, j); c&(cS|cL|cN) == 0 {
				e := runNonSLN(s, j)
				for e < len(s) && (s[e] == '\r' || s[e] == '\n' || s[e] == '/') {
					e++
				}
				return e
			}
		}
	}
	// Only whitespace is left: c0 has cS.
	w := run(s, i, cS)
	// 5. \s*[\r\n]+ — up to the last CR/LF of the whitespace run.
	for j := w; j > i; j-- {
		if s[j-1] == '\r' || s[j-1] == '\n' {
			return j
		}
	}
	// 6. \s+(?!\S) — the whole run at the end of the text, else all but
	// its last rune.
	if w == len(s) {
		return w
	}
	if _, n := before(s, w); w-n > i {
		return w - n
	}
	// 7. \s+
	return w
}

// runNonSLN returns the end of the run from i of runes that are neither
// whitespace, letters nor numbers.
func runNonSLN(s string, i int) int {
	for i < len(s) {
		c, n := at(s, i)
		if c&(cS|cL|cN) != 0 {
			break
		}
		i += n
	}
	return i
}

// upperLower matches [U]*[W]+ at s: the greedy U run gives back runes
// until one in W follows it, then W+ runs greedily. It returns the end,
// or -1 when there is no match.
func upperLower(s string, i int) int {
	if i >= len(s) {
		return -1
	}
	u := run(s, i, cU)
	j := u
	for {
		if j < len(s) {
			if c, _ := at(s, j); c&cW != 0 {
				return run(s, j, cW)
			}
		}
		if j == i {
			return -1
		}
		_, n := before(s, j)
		j -= n
	}
}

// contraction extends a letter match at e by an optional
// (?i:'s|'t|'re|'ve|'m|'ll|'d). Case folding is Unicode's, as in Rust's
// regex crate: 'ſ (U+017F, long s) matches 's too.
func contraction(s string, e int) int {
	if e+1 >= len(s) || s[e] != '\'' {
		return e
	}
	switch s[e+1] | 0x20 {
	case 's', 't', 'm', 'd':
		return e + 2
	case 'r', 'v':
		if e+2 < len(s) && s[e+2]|0x20 == 'e' {
			return e + 3
		}
	case 'l':
		if e+2 < len(s) && s[e+2]|0x20 == 'l' {
			return e + 3
		}
	}
	if s[e+1] == 0xC5 && e+2 < len(s) && s[e+2] == 0xBF { // ſ
		return e + 3
	}
	return e
}

// gpt2Next matches the GPT-2 pattern (ByteLevel with use_regex):
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func gpt2Next(s string, i int) int {
	if s[i] == '\'' && i+1 < len(s) {
		switch s[i+1] {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2] == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2] == 'l' {
				return i + 3
			}
		}
	}
	j := i
	if s[i] == ' ' && i+1 < len(s) {
		j++
	}
	if j < len(s) {
		c, _ := at(s, j)
		switch {
		case c&cL != 0:
			return run(s, j, cL)
		case c&cN != 0:
			return run(s, j, cN)
		case c&cS == 0:
			return runNonSLN(s, j)
		}
	}
	w := run(s, i, cS)
	if w == len(s) {
		return w
	}
	if _, n := before(s, w); w-n > i {
		return w - n
	}
	return w
}
