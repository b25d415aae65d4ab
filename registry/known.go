package registry

import "strings"

// KnownFile is a file whose content the catalog knows: the digest its
// publisher gives, for checking copies that come without one (an S3 or
// Azure prefix filled by `aws s3 sync` from a Hugging Face snapshot).
type KnownFile struct {
	Repo   string // the catalog repository, e.g. "openai/gpt-oss-20b"
	Path   string
	Size   int64
	SHA256 string
}

// knownFiles holds only digests verified against the publisher's own
// listing (the Hub's LFS oid). None is recorded yet: this build cannot
// reach the Hub to confirm them, and a wrong entry would refuse good
// copies. Sources treat a file not found here as "not checked".
var knownFiles []KnownFile

// KnownSHA256 returns the sha256 the catalog knows for the file at p of
// the model name (a catalog alias, name or repository) when its size
// matches too.
func KnownSHA256(name, p string, size int64) (string, bool) {
	m := Lookup(name)
	if m == nil {
		return "", false
	}
	for _, k := range knownFiles {
		if strings.EqualFold(k.Repo, m.Repo) && k.Path == p && k.Size == size {
			return k.SHA256, true
		}
	}
	return "", false
}
