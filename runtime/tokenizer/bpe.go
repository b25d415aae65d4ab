package tokenizer

import (
	"fmt"
	"strings"
)

// byteToRune is GPT-2's byte-level alphabet: printable Latin-1 bytes stand
// for themselves, the other 68 bytes for U+0100 onwards, in byte order.
var byteToRune [256]rune

// runeToByte inverts byteToRune (-1: not in the alphabet).
var runeToByte [324]int16

func init() {
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
	}
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	for b, r := range byteToRune {
		runeToByte[r] = int16(b)
	}
}

// fromByteLevel turns a token written in the byte-level alphabet back into
// its bytes.
func fromByteLevel(tok string) (string, error) {
	b, err := appendFromByteLevel(make([]byte, 0, len(tok)), tok)
	return string(b), err
}

// appendFromByteLevel appends the bytes a byte-level token stands for.
func appendFromByteLevel(dst []byte, tok string) ([]byte, error) {
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
			return dst, fmt.Errorf("token %q: %q is not in the byte-level alphabet", tok, r)
		}
		dst = append(dst, byte(runeToByte[r]))
	}
	return dst, nil
}

// toByteLevel writes bytes in the byte-level alphabet.
func toByteLevel(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(byteToRune[c])
	}
	return sb.String()
}

// merge is what joining two adjacent parts gives: the merge's priority
// (lower first), the id of the joined token and, for Hugging Face merges,
// the byte length of the left part (0: any split, tiktoken's rule).
type merge struct {
	rank int32
	id   int32
	left int32
}

type pairKey struct {
	joined string
	left   int32
}

// bpe holds the merge table keyed by the joined bytes, so a pair is looked
// up with a substring of the input: no allocation.
type bpe struct {
	merges map[string]merge
	// dups holds the rare Hugging Face merges whose joined bytes another,
	// better-ranked merge already produces from a different split.
	dups   map[pairKey]merge
	byteID [256]int32
}

const noRank = int32(1<<31 - 1)

// pair returns the merge of s[a:b] and s[b:c].
func (p *bpe) pair(s string, a, b, c int) merge {
	m, ok := p.merges[s[a:c]]
	if !ok {
		return merge{rank: noRank}
	}
	if m.left == 0 || int(m.left) == b-a {
		return m
	}
	if p.dups != nil {
		if d, ok := p.dups[pairKey{s[a:c], int32(b - a)}]; ok {
			return d
		}
	}
	return merge{rank: noRank}
}

// part is one token of a piece being merged: it starts at start, and
// joining it with the next part would give m.
type part struct {
	start int
	id    int32
	m     merge
}

// heapFrom is the piece length from which encode switches from the
// quadratic scan (fastest for words) to the heap (long runs of spaces,
// digits-free blobs).
const heapFrom = 128

// encode appends the ids of the byte-pair merge of the piece s: the
// lowest-ranked adjacent pair is merged first, the leftmost on ties.
func (p *bpe) encode(s string, out []int32, scratch *[]part) []int32 {
	if len(s) == 1 {
		return append(out, p.byteID[s[0]])
	}
	if len(s) >= heapFrom {
		return p.encodeHeap(s, out)
	}
	return p.encodeScan(s, out, scratch)
}

// encodeScan merges by scanning all pairs for the lowest rank each round.
func (p *bpe) encodeScan(s string, out []int32, scratch *[]part) []int32 {
	parts := (*scratch)[:0]
	for i := 0; i < len(s); i++ {
		parts = append(parts, part{start: i, id: p.byteID[s[i]]})
	}
	parts = append(parts, part{start: len(s), m: merge{rank: noRank}})
	for i := 0; i+2 < len(parts); i++ {
		parts[i].m = p.pair(s, parts[i].start, parts[i+1].start, parts[i+2].start)
	}
	parts[len(parts)-2].m = merge{rank: noRank}
	for len(parts) > 2 {
		best, bi := noRank, -1
		for i := 0; i+1 < len(parts); i++ {
			if r := parts[i].m.rank; r < best {
				best, bi = r, i
			}
		}
		if bi < 0 {
			break
		}
		parts[bi].id = parts[bi].m.id
		parts = append(parts[:bi+1], parts[bi+2:]...)
		if bi+2 < len(parts) {
			parts[bi].m = p.pair(s, parts[bi].start, parts[bi+1].start, parts[bi+2].start)
		} else {
			parts[bi].m = merge{rank: noRank}
		}
		if bi > 0 {
			parts[bi-1].m = p.pair(s, parts[bi-1].start, parts[bi].start, parts[bi+1].start)
		}
	}
	for i := 0; i+1 < len(parts); i++ {
		out = append(out, parts[i].id)
	}
	*scratch = parts
	return out
}

// candidate is a pair in the heap: the merge m of the part starting at
// left with the part ending at end; stale once either part changed.
type candidate struct {
	m     merge
	left  int
	right int // start of the right part
	end   int
}

// candHeap is a binary min-heap of candidates (lowest rank, then
// leftmost), typed to avoid container/heap's boxing.
type candHeap []candidate

func (h candHeap) less(i, j int) bool {
	if h[i].m.rank != h[j].m.rank {
		return h[i].m.rank < h[j].m.rank
	}
	return h[i].left < h[j].left
}

func (h *candHeap) push(c candidate) {
	*h = append(*h, c)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *candHeap) pop() candidate {
	q := *h
	top := q[0]
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(q) {
			break
		}
		m := l
		if r := l + 1; r < len(q) && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// encodeHeap is encode in O(n log n) for long pieces: parts form a linked
// list over byte offsets and candidate pairs wait in a min-heap.
func (p *bpe) encodeHeap(s string, out []int32) []int32 {
	n := len(s)
	next := make([]int, n) // start of the next part (n at the end); -1: not a part start
	prev := make([]int, n)
	ids := make([]int32, n)
	for i := 0; i < n; i++ {
		next[i], prev[i], ids[i] = i+1, i-1, p.byteID[s[i]]
	}
	h := make(candHeap, 0, n)
	push := func(a int) {
		if a < 0 || next[a] >= n {
			return
		}
		b := next[a]
		m := p.pair(s, a, b, next[b])
		if m.rank != noRank {
			h.push(candidate{m, a, b, next[b]})
		}
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for len(h) > 0 {
		c := h.pop()
		if next[c.left] != c.right || c.right >= n || next[c.right] != c.end {
			continue // a part changed since this pair was queued
		}
		ids[c.left] = c.m.id
		next[c.left] = c.end
		next[c.right] = -1
		if c.end < n {
			prev[c.end] = c.left
		}
		push(prev[c.left])
		push(c.left)
	}
	for i := 0; i < n; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}
