package fetch

import (
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"

	"github.com/gptoss/gptoss/registry"
)

const journalVersion = 1

// maxJournalSize bounds what we read back: a journal lists at most a few
// thousand intervals.
const maxJournalSize = 4 << 20

// journal is the resume state of one partial download (see doc.go).
type journal struct {
	Version  int        `json:"version"`
	Key      string     `json:"key"`
	Path     string     `json:"path"`     // informational
	Size     int64      `json:"size"`     // the file's size; the .part file has exactly this size
	PartSize int64      `json:"partSize"` // the layout it was started with (informational)
	Done     [][2]int64 `json:"done"`     // sorted, disjoint, non-adjacent [start, end) ranges on disk
	Hashed   int64      `json:"hashed"`   // [0, Hashed) is hashed into the states below
	SHA256   []byte     `json:"sha256State,omitempty"`
	GitSHA1  []byte     `json:"gitSha1State,omitempty"` // only for files with a GitSHA1

	// A finished record (see doc.go): a file the source gave no digest for
	// was downloaded, hashed as it landed and published under Published.
	// Done is empty; the identity below must match for it to be used.
	Published string `json:"published,omitempty"` // sha256 hex of the published blob
	Source    string `json:"source,omitempty"`    // the manifest's source description
	Name      string `json:"name,omitempty"`      // the manifest's name
	Revision  string `json:"revision,omitempty"`  // the manifest's revision (listing-derived for object stores)
}

// doneBytes is the number of bytes the journal says are on disk.
func (j *journal) doneBytes() int64 {
	var n int64
	for _, d := range j.Done {
		n += d[1] - d[0]
	}
	return n
}

// prefix is the end of the contiguous written range starting at 0.
func (j *journal) prefix() int64 {
	if len(j.Done) > 0 && j.Done[0][0] == 0 {
		return j.Done[0][1]
	}
	return 0
}

// errBadJournal marks a journal that cannot be trusted; it and its partial
// are discarded.
var errBadJournal = errors.New("unusable resume journal")

// readJournal loads and checks the journal at path for a file of this key
// and size. It returns (nil, nil) when there is none.
func readJournal(path, key string, f registry.File) (*journal, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(b) > maxJournalSize {
		return nil, fmt.Errorf("%w: %s is too large", errBadJournal, path)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBadJournal, path, err)
	}
	if err := j.check(key, f); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errBadJournal, path, err)
	}
	return &j, nil
}

func (j *journal) check(key string, f registry.File) error {
	switch {
	case j.Version != journalVersion:
		return fmt.Errorf("version %d", j.Version)
	case j.Key != key:
		return fmt.Errorf("key %q, want %q", j.Key, key)
	case j.Size != f.Size:
		return fmt.Errorf("size %d, want %d", j.Size, f.Size)
	case j.PartSize <= 0:
		return fmt.Errorf("part size %d", j.PartSize)
	case j.Published != "" && (!registry.IsSHA256Hex(j.Published) || len(j.Done) != 0 || j.Hashed != 0):
		return fmt.Errorf("bad finished record %q", j.Published)
	}
	var last int64 = -1
	for _, d := range j.Done {
		if d[0] < 0 || d[0] >= d[1] || d[1] > j.Size || d[0] <= last {
			return fmt.Errorf("bad range %v", d)
		}
		last = d[1]
	}
	if j.Hashed < 0 || j.Hashed > j.prefix() {
		return fmt.Errorf("hashed %d beyond the written prefix %d", j.Hashed, j.prefix())
	}
	if _, _, err := j.hashers(f); err != nil {
		return err
	}
	return nil
}

// newHashers returns fresh hashers for f: sha256 of the content, and the git
// blob sha1 (over "blob <size>\x00" + content) when f has a GitSHA1.
func newHashers(f registry.File) (h256, h1 hash.Hash) {
	h256 = sha256.New()
	if f.GitSHA1 != "" {
		h1 = registry.NewGitBlobHash(f.Size)
	}
	return h256, h1
}

// hashers restores the hash states the journal saved at j.Hashed.
func (j *journal) hashers(f registry.File) (h256, h1 hash.Hash, err error) {
	h256, h1 = newHashers(f)
	if j.Hashed == 0 {
		return h256, h1, nil
	}
	if err := unmarshalState(h256, j.SHA256); err != nil {
		return nil, nil, fmt.Errorf("sha256 state: %v", err)
	}
	if h1 != nil {
		if err := unmarshalState(h1, j.GitSHA1); err != nil {
			return nil, nil, fmt.Errorf("git sha1 state: %v", err)
		}
	}
	return h256, h1, nil
}

func unmarshalState(h hash.Hash, b []byte) error {
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return errors.New("hash state cannot be restored")
	}
	if len(b) == 0 {
		return errors.New("missing")
	}
	return u.UnmarshalBinary(b)
}

func marshalState(h hash.Hash) ([]byte, error) {
	if h == nil {
		return nil, nil
	}
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("hash state cannot be saved")
	}
	return m.MarshalBinary()
}

// addRange appends [s, e) to a sorted range list, merging with the last
// range when they touch. Callers add ranges in increasing order.
func addRange(rs [][2]int64, s, e int64) [][2]int64 {
	if s >= e {
		return rs
	}
	if n := len(rs); n > 0 && rs[n-1][1] >= s {
		rs[n-1][1] = max(rs[n-1][1], e)
		return rs
	}
	return append(rs, [2]int64{s, e})
}
