package tokenizer

import (
	"slices"
	"testing"
)

// FuzzEncode: for any bytes, both splitters advance and cover the input,
// the heap and the scan merge alike, and the round trip is exact.
func FuzzEncode(f *testing.F) {
	for _, s := range handTexts {
		f.Add(s)
	}
	f.Add("\xff\xfe'S'ſ\u0085\ufeff \t\r\n\r\n  x")
	tk := tinyTokenizer(f)
	f.Fuzz(func(t *testing.T, s string) {
		for _, sp := range []splitter{o200kNext, gpt2Next} {
			for i := 0; i < len(s); {
				e := sp(s, i)
				if e <= i || e > len(s) {
					t.Fatalf("%q: piece at %d ends at %d", s, i, e)
				}
				i = e
			}
		}
		if got := tk.Decode(tk.EncodeOrdinary(s)); got != s {
			t.Fatalf("round trip of %q gave %q", s, got)
		}
		if len(s) >= 2 {
			var sc []part
			if a, b := tk.encodeScan(s, nil, &sc), tk.encodeHeap(s, nil); !slices.Equal(a, b) {
				t.Fatalf("%q: scan %v, heap %v", s, a, b)
			}
		}
	})
}
