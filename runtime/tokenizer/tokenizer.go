package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// maxID bounds token ids read from files, so a hostile file cannot make
// Load allocate gigabytes.
const maxID = 1 << 24

// Tokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	bpe
	split splitter
	// vocab maps a token's bytes to its id.
	vocab map[string]int32
	// whole: a piece that is a vocab token is that token without merging
	// (tiktoken's rule; Hugging Face's ignore_merges).
	whole          bool
	addPrefixSpace bool
	tokens         [][]byte // id → bytes (a special's text); nil: no such id
	special        []bool   // id → is a special (added) token
	specials       map[string]int32
	specialLens    []int // distinct special lengths, longest first
	specialFirst   [256]bool
	cache          pieceCache
	scratch        sync.Pool
	// wholeState says, 2 bits per id, whether merging a vocab token's own
	// bytes gives back that token (Hugging Face files, learnt lazily):
	// 0 unknown, wholeYes, wholeNo.
	wholeState []atomic.Uint32
}

const (
	wholeYes = 1
	wholeNo  = 2
)

// Load reads a Hugging Face tokenizer.json holding a byte-level BPE model.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseHF(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

type hfFile struct {
	AddedTokens []struct {
		ID      int32  `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type                    string           `json:"type"`
		Vocab                   map[string]int32 `json:"vocab"`
		Merges                  json.RawMessage  `json:"merges"`
		IgnoreMerges            bool             `json:"ignore_merges"`
		ByteFallback            bool             `json:"byte_fallback"`
		ContinuingSubwordPrefix string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         string           `json:"end_of_word_suffix"`
		Dropout                 *float64         `json:"dropout"`
	} `json:"model"`
}

type hfPreTokenizer struct {
	Type           string `json:"type"`
	AddPrefixSpace bool   `json:"add_prefix_space"`
	UseRegex       *bool  `json:"use_regex"`
	Pattern        struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Behavior      string            `json:"behavior"`
	Invert        bool              `json:"invert"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
}

// The pre-tokenizer patterns this package implements by hand.
const (
	o200kPattern = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// The same with the case-insensitive group spelt out (js-tiktoken).
	o200kPatternExpanded = `[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	gpt2Pattern          = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
)

// O200kPattern is the o200k (and o200k_harmony) pre-tokenizer regex that
// the splitter implements.
const O200kPattern = o200kPattern

func patternSplitter(p string) (splitter, bool) {
	switch p {
	case o200kPattern, o200kPatternExpanded:
		return o200kNext, true
	case gpt2Pattern:
		return gpt2Next, true
	}
	return nil, false
}

// preTokenizer reads the pre_tokenizer: ByteLevel with use_regex (GPT-2),
// or Sequence[Split(Regex), ByteLevel(use_regex false)] with a pattern
// this package implements.
func preTokenizer(raw json.RawMessage) (split splitter, addPrefix bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, errors.New("pre_tokenizer: none; want a byte-level one")
	}
	var p hfPreTokenizer
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, false, fmt.Errorf("pre_tokenizer: %w", err)
	}
	var steps []hfPreTokenizer
	if p.Type == "Sequence" {
		for _, r := range p.PreTokenizers {
			var q hfPreTokenizer
			if err := json.Unmarshal(r, &q); err != nil {
				return nil, false, fmt.Errorf("pre_tokenizer: %w", err)
			}
			steps = append(steps, q)
		}
	} else {
		steps = []hfPreTokenizer{p}
	}
	sawByteLevel := false
	for _, q := range steps {
		switch q.Type {
		case "ByteLevel":
			if sawByteLevel {
				return nil, false, errors.New("pre_tokenizer: two ByteLevel steps")
			}
			sawByteLevel = true
			addPrefix = q.AddPrefixSpace
			if q.UseRegex == nil || *q.UseRegex {
				if split != nil {
					return nil, false, errors.New("pre_tokenizer: a Split and a ByteLevel with use_regex")
				}
				split = gpt2Next
			}
		case "Split":
			if split != nil || sawByteLevel {
				return nil, false, errors.New("pre_tokenizer: unsupported Split position; want Split then ByteLevel")
			}
			if q.Pattern.Regex == nil {
				return nil, false, errors.New("pre_tokenizer: Split with a String pattern is not supported")
			}
			if q.Invert || (q.Behavior != "Isolated" && q.Behavior != "") {
				return nil, false, fmt.Errorf("pre_tokenizer: Split behavior %q invert %v is not supported (want Isolated)", q.Behavior, q.Invert)
			}
			s, ok := patternSplitter(*q.Pattern.Regex)
			if !ok {
				return nil, false, fmt.Errorf("pre_tokenizer: Split regex %.60q… is not one this tokenizer implements (o200k, GPT-2)", *q.Pattern.Regex)
			}
			split = s
		default:
			return nil, false, fmt.Errorf("pre_tokenizer: %q is not supported (want ByteLevel, Split)", q.Type)
		}
	}
	if !sawByteLevel {
		return nil, false, errors.New("pre_tokenizer: no ByteLevel step; only byte-level BPE is supported")
	}
	if split == nil {
		return nil, false, errors.New("pre_tokenizer: ByteLevel without use_regex and no Split")
	}
	return split, addPrefix, nil
}

func parseHF(b []byte) (*Tokenizer, error) {
	var f hfFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	m := &f.Model
	switch {
	case m.Type != "BPE":
		return nil, fmt.Errorf("model type %q is not supported (want BPE)", m.Type)
	case len(m.Vocab) == 0:
		return nil, errors.New("model.vocab is empty")
	case m.ByteFallback:
		return nil, errors.New("model.byte_fallback is not supported (want byte-level BPE)")
	case m.ContinuingSubwordPrefix != "" || m.EndOfWordSuffix != "":
		return nil, errors.New("model: subword prefixes/suffixes are not supported (want byte-level BPE)")
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, errors.New("model.dropout is not supported")
	}
	if len(f.Normalizer) > 0 && string(f.Normalizer) != "null" {
		return nil, errors.New("normalizer: not supported (byte-level BPE has none)")
	}
	split, addPrefix, err := preTokenizer(f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{split: split, addPrefixSpace: addPrefix, whole: m.IgnoreMerges}
	t.vocab = make(map[string]int32, len(m.Vocab))
	maxSeen := int32(-1)
	// Every token's bytes go into one arena (sized up front so it never
	// moves); the vocab keys and t.tokens are views into it.
	size := 0
	for tok := range m.Vocab {
		size += len(tok)
	}
	arena := make([]byte, 0, size)
	for tok, id := range m.Vocab {
		if id < 0 || id >= maxID {
			return nil, fmt.Errorf("model.vocab: token %q has id %d out of range", tok, id)
		}
		start := len(arena)
		var err error
		if arena, err = appendFromByteLevel(arena, tok); err != nil {
			return nil, fmt.Errorf("model.vocab: %w", err)
		}
		if len(arena) == start {
			return nil, errors.New("model.vocab: an empty token")
		}
		bs := unsafe.String(&arena[start], len(arena)-start)
		if _, dup := t.vocab[bs]; dup {
			return nil, fmt.Errorf("model.vocab: two tokens for bytes %q", bs)
		}
		t.vocab[bs] = id
		maxSeen = max(maxSeen, id)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= maxID || a.Content == "" {
			return nil, fmt.Errorf("added_tokens: bad token %q id %d", a.Content, a.ID)
		}
		maxSeen = max(maxSeen, a.ID)
	}
	t.tokens = make([][]byte, maxSeen+1)
	for bs, id := range t.vocab {
		if t.tokens[id] != nil {
			return nil, fmt.Errorf("model.vocab: id %d is used twice", id)
		}
		t.tokens[id] = unsafe.Slice(unsafe.StringData(bs), len(bs))
	}
	if err := t.setBytes(); err != nil {
		return nil, err
	}
	if err := t.readMerges(m.Merges); err != nil {
		return nil, err
	}
	sp := map[string]int32{}
	for _, a := range f.AddedTokens {
		if old, ok := sp[a.Content]; ok && old != a.ID {
			return nil, fmt.Errorf("added_tokens: %q has ids %d and %d", a.Content, old, a.ID)
		}
		if t.tokens[a.ID] != nil && string(t.tokens[a.ID]) != a.Content {
			return nil, fmt.Errorf("added_tokens: id %d is %q but the vocab has %q there", a.ID, a.Content, t.tokens[a.ID])
		}
		sp[a.Content] = a.ID
		t.tokens[a.ID] = []byte(a.Content)
	}
	t.setSpecials(sp)
	t.wholeState = make([]atomic.Uint32, (len(t.tokens)+15)/16)
	initClasses()
	return t, nil
}

// setBytes fills byteID from the vocab: byte-level BPE needs every byte.
func (t *Tokenizer) setBytes() error {
	for b := 0; b < 256; b++ {
		id, ok := t.vocab[string([]byte{byte(b)})]
		if !ok {
			return fmt.Errorf("model.vocab: no token for byte 0x%02x (%q); not a byte-level vocabulary", b, byteToRune[b])
		}
		t.byteID[b] = id
	}
	return nil
}

// readMerges reads model.merges, "a b" strings or [a, b] pairs; the
// merge's index is its rank.
func (t *Tokenizer) readMerges(raw json.RawMessage) error {
	var pairs [][2]string
	if len(raw) > 0 && string(raw) != "null" {
		var strs []string
		if err := json.Unmarshal(raw, &strs); err == nil {
			pairs = make([][2]string, len(strs))
			for i, s := range strs {
				a, b, ok := strings.Cut(s, " ")
				if !ok || a == "" || b == "" || strings.Contains(b, " ") {
					return fmt.Errorf("model.merges[%d]: %q is not \"left right\"", i, s)
				}
				pairs[i] = [2]string{a, b}
			}
		} else if err := json.Unmarshal(raw, &pairs); err != nil {
			return fmt.Errorf("model.merges: want strings or pairs of strings: %w", err)
		}
	}
	t.merges = make(map[string]merge, len(pairs))
	var buf []byte
	for i, p := range pairs {
		var err error
		if buf, err = appendFromByteLevel(buf[:0], p[0]); err != nil {
			return fmt.Errorf("model.merges[%d]: %w", i, err)
		}
		left := len(buf)
		if buf, err = appendFromByteLevel(buf, p[1]); err != nil {
			return fmt.Errorf("model.merges[%d]: %w", i, err)
		}
		if left == 0 || left == len(buf) {
			return fmt.Errorf("model.merges[%d]: empty side", i)
		}
		id, ok := t.vocab[string(buf)] // no allocation for the lookup
		if !ok {
			return fmt.Errorf("model.merges[%d]: %q + %q is not in the vocab", i, p[0], p[1])
		}
		joined := unsafe.String(unsafe.SliceData(t.tokens[id]), len(t.tokens[id])) // the arena's copy
		m := merge{rank: int32(i), id: id, left: int32(left)}
		if old, ok := t.merges[joined]; !ok {
			t.merges[joined] = m
		} else if old.left != m.left {
			if t.dups == nil {
				t.dups = map[pairKey]merge{}
			}
			if _, ok := t.dups[pairKey{joined, m.left}]; !ok {
				t.dups[pairKey{joined, m.left}] = m
			}
		}
	}
	return nil
}

func (t *Tokenizer) setSpecials(sp map[string]int32) {
	t.specials = sp
	t.special = make([]bool, len(t.tokens))
	lens := map[int]bool{}
	for s, id := range sp {
		t.special[id] = true
		lens[len(s)] = true
		t.specialFirst[s[0]] = true
	}
	t.specialLens = t.specialLens[:0]
	for l := range lens {
		t.specialLens = append(t.specialLens, l)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(t.specialLens)))
}

// LoadTiktoken reads a tiktoken ranks file (o200k_base.tiktoken: a base64
// token, a space and its rank per line) with the o200k pre-tokenizer and
// the given special tokens (nil: none; HarmonySpecials for o200k_harmony).
func LoadTiktoken(path string, specials map[string]int32) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := &Tokenizer{split: o200kNext, whole: true, vocab: map[string]int32{}}
	t.merges = map[string]merge{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	maxSeen := int32(-1)
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		tok, rank, ok := bytes.Cut(l, []byte{' '})
		if !ok {
			return nil, fmt.Errorf("%s:%d: want \"base64 rank\"", path, line)
		}
		bs, err := base64.StdEncoding.DecodeString(string(tok))
		if err != nil || len(bs) == 0 {
			return nil, fmt.Errorf("%s:%d: bad base64 token %q", path, line, tok)
		}
		r, err := strconv.ParseInt(string(rank), 10, 32)
		if err != nil || r < 0 || r >= maxID {
			return nil, fmt.Errorf("%s:%d: bad rank %q", path, line, rank)
		}
		s := string(bs)
		if _, dup := t.vocab[s]; dup {
			return nil, fmt.Errorf("%s:%d: token %q listed twice", path, line, tok)
		}
		t.vocab[s] = int32(r)
		if len(s) > 1 {
			t.merges[s] = merge{rank: int32(r), id: int32(r)}
		}
		maxSeen = max(maxSeen, int32(r))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for s, id := range specials {
		if id < 0 || id >= maxID || s == "" {
			return nil, fmt.Errorf("special token %q: bad id %d", s, id)
		}
		maxSeen = max(maxSeen, id)
	}
	t.tokens = make([][]byte, maxSeen+1)
	for s, id := range t.vocab {
		if t.tokens[id] != nil {
			return nil, fmt.Errorf("%s: rank %d is used twice", path, id)
		}
		t.tokens[id] = []byte(s)
	}
	for s, id := range specials {
		if t.tokens[id] != nil {
			return nil, fmt.Errorf("special token %q: id %d is already a token", s, id)
		}
		t.tokens[id] = []byte(s)
	}
	if err := t.setBytes(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sp := make(map[string]int32, len(specials))
	for s, id := range specials {
		sp[s] = id
	}
	t.setSpecials(sp)
	initClasses()
	return t, nil
}

// HarmonySpecials returns o200k_harmony's special tokens (GPT-OSS.md §5):
// 199998 <|startoftext|> … 201087 <|reserved_201087|>.
func HarmonySpecials() map[string]int32 {
	named := map[int32]string{
		199998: "<|startoftext|>", 199999: "<|endoftext|>", 200002: "<|return|>",
		200003: "<|constrain|>", 200005: "<|channel|>", 200006: "<|start|>",
		200007: "<|end|>", 200008: "<|message|>", 200012: "<|call|>",
	}
	m := make(map[string]int32, 201088-199998)
	for id := int32(199998); id < 201088; id++ {
		s, ok := named[id]
		if !ok {
			s = "<|reserved_" + strconv.Itoa(int(id)) + "|>"
		}
		m[s] = id
	}
	return m
}

// VocabSize is one more than the highest token id (special tokens
// included). The real gpt-oss tokenizer.json lists specials up to 200018,
// so its VocabSize is below the model's 201088 rows.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// SpecialID returns the id of a special token's text ("<|start|>").
func (t *Tokenizer) SpecialID(s string) (int32, bool) {
	id, ok := t.specials[s]
	return id, ok
}

// IsSpecial reports whether id is a special (added) token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// TokenBytes returns the bytes of a token (a special's text), nil for an
// unknown id. The slice is shared: do not modify it.
func (t *Tokenizer) TokenBytes(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	return t.tokens[id]
}

// Decode concatenates the tokens' bytes; specials decode to their text,
// unknown ids to nothing. The result is the exact bytes, which need not
// be valid UTF-8 for an arbitrary id sequence (StreamDecoder gives valid
// UTF-8).
func (t *Tokenizer) Decode(ids []int32) string {
	n := 0
	for _, id := range ids {
		n += len(t.TokenBytes(id))
	}
	b := make([]byte, 0, n)
	for _, id := range ids {
		b = append(b, t.TokenBytes(id)...)
	}
	return string(b)
}

// EncodeOrdinary encodes s as text: special-token text ("<|start|>") is
// encoded like any other text, never as a special id.
func (t *Tokenizer) EncodeOrdinary(s string) []int32 {
	return t.encodeText(s, make([]int32, 0, len(s)/4+1))
}

// Encode encodes s, turning the text of the listed special tokens into
// their ids ("all": every special). Other special-token text, and names
// that are not special tokens, are treated as ordinary text.
func (t *Tokenizer) Encode(s string, allowedSpecial ...string) []int32 {
	if len(allowedSpecial) == 0 || len(t.specials) == 0 {
		return t.EncodeOrdinary(s)
	}
	all := false
	var allowed map[int32]bool
	for _, a := range allowedSpecial {
		if a == "all" {
			all = true
			break
		}
		if id, ok := t.specials[a]; ok {
			if allowed == nil {
				allowed = map[int32]bool{}
			}
			allowed[id] = true
		}
	}
	if !all && allowed == nil {
		return t.EncodeOrdinary(s)
	}
	out := make([]int32, 0, len(s)/4+1)
	start := 0
	for i := 0; i < len(s); i++ {
		if !t.specialFirst[s[i]] {
			continue
		}
		for _, l := range t.specialLens {
			if i+l > len(s) {
				continue
			}
			id, ok := t.specials[s[i:i+l]]
			if !ok || !(all || allowed[id]) {
				continue
			}
			out = t.encodeText(s[start:i], out)
			out = append(out, id)
			start = i + l
			i = start - 1
			break
		}
	}
	return t.encodeText(s[start:], out)
}

// encodeText appends the ids of s, pre-tokenized then merged piece by piece.
func (t *Tokenizer) encodeText(s string, out []int32) []int32 {
	if s == "" {
		return out
	}
	if t.addPrefixSpace && s[0] != ' ' {
		s = " " + s
	}
	sp, _ := t.scratch.Get().(*[]part)
	if sp == nil {
		sp = new([]part)
	}
	for i := 0; i < len(s); {
		e := t.split(s, i)
		out = t.piece(s[i:e], out, sp)
		i = e
	}
	t.scratch.Put(sp)
	return out
}

// piece appends the ids of one pre-tokenized piece.
func (t *Tokenizer) piece(p string, out []int32, sp *[]part) []int32 {
	if len(p) == 1 {
		return append(out, t.byteID[p[0]])
	}
	if id, ok := t.vocab[p]; ok {
		if t.whole {
			return append(out, id)
		}
		// Hugging Face semantics: the merges decide, but most pieces that
		// are tokens merge back into themselves; learn that once per id.
		w, shift := &t.wholeState[id/16], uint(id%16)*2
		switch (w.Load() >> shift) & 3 {
		case wholeYes:
			return append(out, id)
		case 0:
			n := len(out)
			out = t.encode(p, out, sp)
			if len(out) == n+1 && out[n] == id {
				w.Or(wholeYes << shift)
			} else {
				w.Or(wholeNo << shift)
			}
			return out
		}
	}
	if ids, ok := t.cache.get(p); ok {
		return append(out, ids...)
	}
	n := len(out)
	out = t.encode(p, out, sp)
	t.cache.put(p, out[n:])
	return out
}
