package convert

import (
	"testing"
)

func TestGoldenBothLayouts(t *testing.T) {
	for _, dir := range []string{"../testdata/golden/tiny", "../testdata/golden/tiny/original"} {
		c, err := OpenCheckpoint(dir)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(c.Names()) == 0 {
			t.Fatalf("%s: no tensors", dir)
		}
		for _, n := range c.Names() {
			ti, _ := c.Tensor(n)
			if int64(len(c.Bytes(ti))) != ti.Size {
				t.Fatalf("%s: bad view", n)
			}
		}
		t.Logf("%s: %d tensors", dir, len(c.Names()))
		c.Close()
	}
}
