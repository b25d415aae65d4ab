package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// StreamDecoder turns tokens into text one at a time, as a model emits
// them: a UTF-8 sequence split across tokens is held back until it is
// complete. Bytes that can never become valid UTF-8 come out as U+FFFD.
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t       *Tokenizer
	pending []byte
}

// NewStreamDecoder starts an empty stream.
func (t *Tokenizer) NewStreamDecoder() *StreamDecoder { return &StreamDecoder{t: t} }

// Add appends a token and returns the text it completes (maybe "").
func (d *StreamDecoder) Add(id int32) string {
	d.pending = append(d.pending, d.t.TokenBytes(id)...)
	b := d.pending
	keep := len(b)
	// An incomplete sequence can only start in the last three bytes.
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		if b[i] < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				keep = i
			}
			break
		}
	}
	out := valid(b[:keep])
	d.pending = append(d.pending[:0], b[keep:]...)
	return out
}

// Flush returns what is held back (an incomplete sequence, as U+FFFD) and
// empties the stream.
func (d *StreamDecoder) Flush() string {
	out := valid(d.pending)
	d.pending = d.pending[:0]
	return out
}

func valid(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
