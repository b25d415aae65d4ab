package fetch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/cache"
	"github.com/gptoss/gptoss/registry"
)

// digestlessFixture is a listing with no digest for most files, as an
// object-store prefix without gptoss-manifest.json gives.
func digestlessFixture(t *testing.T) (*registry.Manifest, *memSource) {
	m, src := fixture(t,
		spec{"config.json", 3 << 10, noDigest},
		spec{"model.safetensors", 2<<20 + 11, noDigest},
		spec{"tokenizer.json", 100 << 10, gitOnly},
	)
	m.Source, m.Revision, m.Format = "s3://models/plain", "listing-0123456789abcdef", "custom"
	return m, src
}

// A digest-less file that was published before the process died (its
// manifest never committed) is found again by the next Fetch of the same
// manifest: not a byte is transferred.
func TestFinishedDigestlessFileIsNotFetchedAgain(t *testing.T) {
	m, src := digestlessFixture(t)
	s := newStore(t)
	e := testEngine(Options{Connections: 4, PartSize: 256 << 10})
	first := copyManifest(m)
	if err := e.Fetch(context.Background(), src, first, s, nil); err != nil {
		t.Fatal(err)
	}
	checkPublished(t, s, first, src)
	// No Commit: this is where a kill -9 after the last byte leaves a pull.

	src.reset()
	plan, err := e.Plan(copyManifest(m), s)
	if err != nil {
		t.Fatal(err)
	}
	if plan.NeedBytes != 0 || plan.CachedBytes != m.TotalSize() {
		t.Errorf("plan of the rerun: need %d, cached %d of %d", plan.NeedBytes, plan.CachedBytes, m.TotalSize())
	}
	rec := &recorder{t: t}
	again := copyManifest(m)
	if err := e.Fetch(context.Background(), src, again, s, rec.cb); err != nil {
		t.Fatal(err)
	}
	t.Logf("rerun: %d bytes fetched, %d requests", src.servedTotal(), len(src.openCalls()))
	if got := src.servedTotal(); got != 0 || len(src.openCalls()) != 0 {
		t.Errorf("the rerun fetched %d bytes in %d requests, want none", got, len(src.openCalls()))
	}
	if n := rec.count(EventFileCached); n != len(m.Files) {
		t.Errorf("%d file_cached events, want %d", n, len(m.Files))
	}
	for i, f := range again.Files {
		if f.SHA256 != first.Files[i].SHA256 {
			t.Errorf("%s: sha256 %q, want %s (computed as it landed)", f.Path, f.SHA256, first.Files[i].SHA256)
		}
	}
	checkPublished(t, s, again, src)
}

// The record is used only for the same file of the same source and
// revision, and only while its blob exists.
func TestFinishedRecordNeedsSameIdentityAndBlob(t *testing.T) {
	m, src := digestlessFixture(t)
	s := newStore(t)
	e := testEngine(Options{Connections: 4, PartSize: 256 << 10})
	first := copyManifest(m)
	if err := e.Fetch(context.Background(), src, first, s, nil); err != nil {
		t.Fatal(err)
	}
	digestless := m.Files[0].Size + m.Files[1].Size

	// Another source with the same name, revision, paths and sizes.
	other := copyManifest(m)
	other.Source = "s3://elsewhere/plain"
	src.reset()
	if err := e.Fetch(context.Background(), src, other, s, nil); err != nil {
		t.Fatal(err)
	}
	if got := src.servedTotal(); got != digestless {
		t.Errorf("another source: fetched %d bytes, want the digest-less files (%d)", got, digestless)
	}

	// Another revision (a replaced object changes the listing's revision).
	rev := copyManifest(m)
	rev.Source = other.Source
	rev.Revision = "listing-fedcba9876543210"
	src.reset()
	if err := e.Fetch(context.Background(), src, rev, s, nil); err != nil {
		t.Fatal(err)
	}
	if got := src.servedTotal(); got != digestless {
		t.Errorf("another revision: fetched %d bytes, want %d", got, digestless)
	}

	// The blob was deleted (gptoss gc): the record alone is not trusted.
	if err := os.Remove(s.BlobPath(first.Files[1].SHA256)); err != nil {
		t.Fatal(err)
	}
	src.reset()
	back := copyManifest(m)
	back.Source, back.Revision = rev.Source, rev.Revision
	if err := e.Fetch(context.Background(), src, back, s, nil); err != nil {
		t.Fatal(err)
	}
	if got := src.servedTotal(); got != m.Files[1].Size {
		t.Errorf("blob gone: fetched %d bytes, want %s again (%d)", got, m.Files[1].Path, m.Files[1].Size)
	}
	checkPublished(t, s, back, src)
}

// resolving serves a fixed manifest.
type resolving struct {
	*memSource
	m *registry.Manifest
}

func (r resolving) Resolve(context.Context, registry.Ref) (*registry.Manifest, error) {
	return copyManifest(r.m), nil
}

// writeStaleJournalTemp leaves in s what a process killed while it
// rewrote file i's journal leaves: the temp file of that atomic write.
func writeStaleJournalTemp(t *testing.T, s *cache.Store, m *registry.Manifest, i int) {
	t.Helper()
	jp, err := s.PartialPath(FileKey(m, m.Files[i]), ".journal")
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(filepath.Dir(jp), "."+filepath.Base(jp)+".12345.tmp")
	if err := os.WriteFile(stale, []byte("{\"half"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Pull drops the finished records once the manifest is committed.
func TestPullRemovesFinishedRecords(t *testing.T) {
	m, src := digestlessFixture(t)
	s := newStore(t)
	writeStaleJournalTemp(t, s, m, 0)
	e := testEngine(Options{Connections: 4, PartSize: 256 << 10})
	res, err := e.Pull(context.Background(), resolving{src, m}, registry.Ref{Scheme: registry.SchemeHF, Repo: m.Name}, s, PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entry == nil {
		t.Fatal("nothing committed")
	}
	ents, err := os.ReadDir(s.Root + "/partial")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if strings.HasSuffix(d.Name(), ".journal") || strings.HasSuffix(d.Name(), ".part") || strings.HasSuffix(d.Name(), ".tmp") {
			t.Errorf("left in partial/ after the commit: %s", d.Name())
		}
	}
}
