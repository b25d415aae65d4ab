package main

// End-to-end: the real binary against a real S3 server (versitygw on
// loopback, internal/s3test), with the aws CLI as the "other tool".

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/internal/s3test"
	"github.com/gptoss/gptoss/internal/testproc"
)

// awsCLI runs the aws CLI against srv as the admin; skipped (failed under
// CI) when it is not installed.
func awsCLI(t *testing.T, srv *s3test.Server, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("aws")
	if err != nil {
		testproc.Missing(t, "the aws CLI is not installed")
	}
	c := exec.Command(bin, append([]string{"--endpoint-url", srv.Endpoint}, args...)...)
	c.Env = append(os.Environ(), srv.Env()...)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// s3Env is a test env whose gptoss talks to srv (and no longer to the Hub
// once it has pulled what it needs), in a fresh GPTOSS_HOME when fresh.
func s3Env(t *testing.T, e *env, srv *s3test.Server, fresh bool, extra ...string) *env {
	e2 := *e
	if fresh {
		e2.home = filepath.Join(t.TempDir(), "home")
	}
	e2.extra = append(append(append([]string{}, e.extra...), srv.Env()...), extra...)
	return &e2
}

func sha256File(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// flipByte damages one byte of a file in place (same size).
func flipByte(t *testing.T, p string, at int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestS3MirrorPullRoundTrip(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	e := newEnv(t, 4<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	files := e.hfFiles()
	a := s3Env(t, e, srv, false)

	const loc = "s3://models/corp/gpt-oss-20b"
	r := a.mustRun("mirror", "20b", "--to", loc)
	t.Logf("mirror:\n%s%s", r.stderr, r.stdout)
	if strings.TrimSpace(r.stdout) != loc || strings.Count(r.stderr, "uploaded\n") != len(files) {
		t.Fatalf("mirror printed %q, %d uploaded (want %d)", r.stdout, strings.Count(r.stderr, "uploaded\n"), len(files))
	}

	// What the aws CLI sees: the files (and the manifest) byte-identical,
	// the sha256 in the metadata.
	ls := awsCLI(t, srv, "s3", "ls", "--recursive", loc+"/")
	for _, f := range append(files, "gptoss-manifest.json") {
		if !strings.Contains(ls, "corp/gpt-oss-20b/"+f+"\n") {
			t.Errorf("aws s3 ls lacks %s:\n%s", f, ls)
		}
	}
	back := t.TempDir()
	awsCLI(t, srv, "s3", "cp", "--recursive", loc+"/", back)
	for _, f := range files {
		if sha256File(t, filepath.Join(back, f)) != sha256File(t, filepath.Join(dir, f)) {
			t.Errorf("aws s3 cp: %s differs", f)
		}
	}
	var man struct {
		Schema   int    `json:"schemaVersion"`
		Name     string `json:"name"`
		Revision string `json:"revision"`
		Source   string `json:"source"`
		Files    []struct {
			Path   string `json:"path"`
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	mb, _ := os.ReadFile(filepath.Join(back, "gptoss-manifest.json"))
	if err := json.Unmarshal(mb, &man); err != nil || man.Schema != 1 || man.Name != repoID || man.Revision != e.repo.Commit || man.Source == "" || len(man.Files) != len(files) {
		t.Fatalf("manifest: %v\n%s", err, mb)
	}
	for _, f := range man.Files {
		if f.SHA256 != sha256File(t, filepath.Join(dir, f.Path)) {
			t.Errorf("manifest sha256 of %s is wrong", f.Path)
		}
	}
	head := awsCLI(t, srv, "s3api", "head-object", "--bucket", "models", "--key", "corp/gpt-oss-20b/"+e.shards()[0].Path)
	if !strings.Contains(head, `"sha256": "`+e.shards()[0].SHA256+`"`) {
		t.Errorf("head-object shows no sha256 metadata:\n%s", head)
	}

	// Again: everything is already there.
	r = a.mustRun("mirror", "20b", "--to", loc, "--json")
	var row mirrorRow
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if json.Unmarshal([]byte(l), &row) == nil && row.Event == "mirrored" {
			break
		}
	}
	if row.Uploaded != 0 || row.Skipped != len(files) || row.Bytes != 0 {
		t.Errorf("second mirror: %+v", row)
	}

	// A fresh machine that can reach only the bucket: the identical
	// snapshot (same revision directory), verified.
	b := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1")
	r = b.mustRun("pull", "20b", "--from", loc)
	dir2 := strings.TrimSpace(r.stdout)
	if filepath.Base(dir2) != e.repo.Commit {
		t.Errorf("snapshot %s, want revision %s", dir2, e.repo.Commit)
	}
	b.checkSnapshot(dir2, files)
	b.checkBlobsVerified()
	b.mustRun("verify", "20b")
	if strings.Contains(r.stderr, "could not be checked") {
		t.Errorf("a mirrored prefix reported unchecked files:\n%s", r.stderr)
	}
	// The same through GPTOSS_MIRROR.
	c := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1", "GPTOSS_MIRROR="+loc)
	c.checkSnapshot(strings.TrimSpace(c.mustRun("pull", "20b").stdout), files)
	// A model the prefix does not hold: not found.
	c.wantCode(exitNotFound, "pull", "120b", "--from", loc)

	// A corrupted object (same size, one byte flipped, metadata intact) is
	// caught: exit 5, nothing committed or published.
	shard := e.shards()[0]
	flipByte(t, srv.Path("models", "corp/gpt-oss-20b/"+shard.Path), shard.Size/2)
	d := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1")
	r = d.wantCode(exitVerify, "pull", "20b", "--from", loc)
	if !strings.Contains(r.stderr, "digest mismatch") || !strings.Contains(r.stderr, shard.Path) || !strings.Contains(r.stderr, "mirror again") {
		t.Errorf("stderr: %s", r.stderr)
	}
	if blobs := d.checkBlobsVerified(); blobs[shard.SHA256] {
		t.Error("the corrupted shard was published")
	}
	if out := d.mustRun("list", "--json").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("a model was committed: %s", out)
	}
	// Mirroring again repairs it: the damaged object has the right size
	// and metadata, so it is skipped … unless its content is checked; the
	// manifest-listed sha256 is what a pull trusts, so re-upload it by
	// deleting it first, as a user would after the error.
	awsCLI(t, srv, "s3", "rm", loc+"/"+shard.Path)
	r = a.mustRun("mirror", "20b", "--to", loc)
	if !strings.Contains(r.stderr, shard.Path) || strings.Count(r.stderr, "uploaded\n") != 1 {
		t.Errorf("repair mirror:\n%s", r.stderr)
	}
	d.checkSnapshot(strings.TrimSpace(d.mustRun("pull", "20b", "--from", loc).stdout), files)

	// An object replaced after the mirror (another size): refused before
	// any download, with what to do.
	os.WriteFile(srv.Path("models", "corp/gpt-oss-20b/config.json"), []byte(`{"replaced":true}`), 0o644)
	r = s3Env(t, e, srv, true).wantCode(exitVerify, "pull", "20b", "--from", loc)
	if !strings.Contains(r.stderr, "config.json") || !strings.Contains(r.stderr, "mirror again") {
		t.Errorf("replaced object: %s", r.stderr)
	}
}

func TestS3ResumeAfterKill(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	e := newEnv(t, 24<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	s3Env(t, e, srv, false).mustRun("mirror", "20b", "--to", "s3://models/gpt-oss-20b")
	// The same snapshot without a manifest: files are keyed by the
	// listing's revision, which must be stable across the two runs.
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	awsCLI(t, srv, "s3", "cp", "--recursive", dir+"/", "s3://models/plain/")
	t.Run("manifest", func(t *testing.T) { resumeS3(t, e, srv, "s3://models/gpt-oss-20b", false) })
	t.Run("no-manifest", func(t *testing.T) { resumeS3(t, e, srv, "s3://models/plain", true) })
}

// resumeS3 kills a rate-capped pull from loc at about half the bytes and
// checks that the rerun fetches only what was missing (plus parts in flight).
//
// Without a manifest (digestless) a file that completed before the kill is
// found again through the finished record its journal left (package fetch):
// it is not fetched again at all.
func resumeS3(t *testing.T, e *env, srv *s3test.Server, loc string, digestless bool) {
	total := e.totalHF()
	proxy := srv.Proxy(t)
	proxy.SetRate(2 << 20)
	b := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1")
	const conns, part = 4, 1 << 20
	args := []string{"pull", "20b", "--from", loc, "--endpoint", proxy.URL, "--connections", fmt.Sprint(conns), "--part-size", "1MiB"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := b.cmd(ctx, args...)
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	for proxy.BodyBytes() < total/2 {
		time.Sleep(20 * time.Millisecond)
		if ctx.Err() != nil {
			t.Fatal("pull did not progress")
		}
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()
	first := proxy.BodyBytes()
	if first >= total {
		t.Fatalf("the pull finished before it was killed (%d of %d bytes)", first, total)
	}
	finished := finishedRecords(t, b.home)
	if digestless && len(finished) == 0 {
		t.Fatal("no file had finished before the kill")
	}
	proxy.ResetBytes()
	proxy.SetRate(0)
	r := b.mustRun(args...)
	second := proxy.BodyBytes()
	slack := int64(2*conns*part) + 64<<10 // parts in flight, the manifest and index read again
	t.Logf("total %d, before the kill %d, after %d; finished before the kill: %v", total, first, second, finished)
	if second > total-first+slack {
		t.Errorf("the rerun fetched %d bytes; only %d were missing (+%d in flight allowed)", second, total-first, slack)
	}
	for p := range finished {
		if p == "model.safetensors.index.json" {
			continue // read once more for selection (hf format), not downloaded
		}
		if got := proxy.PathBytes("/" + p); got != 0 {
			t.Errorf("%s had finished before the kill but was fetched again (%d bytes)", p, got)
		}
	}
	b.checkSnapshot(strings.TrimSpace(r.stdout), e.hfFiles())
	b.mustRun("verify", "20b")
	if ents, _ := os.ReadDir(filepath.Join(b.home, "partial")); len(ents) != 0 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("partial/ not cleaned after the commit: %v", names)
	}
}

// finishedRecords lists the paths of the files a killed pull had published
// without a digest from the source: the finished records under partial/.
func finishedRecords(t *testing.T, home string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	ps, _ := filepath.Glob(filepath.Join(home, "partial", "*.journal"))
	for _, p := range ps {
		var j struct {
			Path      string `json:"path"`
			Published string `json:"published"`
		}
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &j) == nil && j.Published != "" {
			out[j.Path] = true
		}
	}
	return out
}

// checkSummary checks the "pulled …" line of a pull's stderr: it says
// "verified" alone only when every file was checked against a digest, and
// counts the files that could not be otherwise.
func checkSummary(t *testing.T, stderr string, files, unchecked int) {
	t.Helper()
	line := ""
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "pulled ") {
			line = l
		}
	}
	want := ", verified"
	if unchecked > 0 {
		want = fmt.Sprintf(", verified %d, %d not checked (no digest known)", files-unchecked, unchecked)
	}
	if !strings.HasSuffix(line, want) {
		t.Errorf("summary %q does not end in %q\n%s", line, want, stderr)
	}
}

func TestS3PrefixWithoutManifest(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	e := newEnv(t, 4<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	files := e.hfFiles()
	// What a user does with another tool: copy a snapshot up, plus a file
	// of their own.
	awsCLI(t, srv, "s3", "cp", "--recursive", dir+"/", "s3://models/plain/")
	os.WriteFile(srv.Path("models", "plain/notes.txt"), []byte("our notes\n"), 0o644)
	const loc = "s3://models/plain"

	// A fresh machine: nothing to check against, and it says so.
	b := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1")
	r := b.mustRun("pull", "20b", "--from", loc)
	t.Logf("pull:\n%s", r.stderr)
	b.checkSnapshot(strings.TrimSpace(r.stdout), files)
	line := ""
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, "could not be checked") {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, fmt.Sprintf("%d of %d files", len(files), len(files))) || !strings.Contains(line, e.shards()[0].Path) {
		t.Errorf("no honest not-checked line:\n%s", r.stderr)
	}
	// The summary before it does not just say "verified".
	checkSummary(t, r.stderr, len(files), len(files))
	// With --json: an "unchecked" event naming the files, "pulled" last,
	// counting them.
	j := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1").mustRun("pull", "20b", "--from", loc, "--json", "--no-convert")
	lines := strings.Split(strings.TrimSpace(j.stdout), "\n")
	var last, un struct {
		Event     string   `json:"event"`
		Files     []string `json:"files"`
		Verified  *int     `json:"verified"`
		Unchecked *int     `json:"unchecked"`
	}
	for _, l := range lines {
		var ev struct {
			Event string `json:"event"`
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "unchecked" {
			json.Unmarshal([]byte(l), &un)
		}
	}
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if last.Event != "pulled" || len(un.Files) != len(files) {
		t.Errorf("--json: last event %q, unchecked %v", last.Event, un.Files)
	}
	if last.Verified == nil || last.Unchecked == nil || *last.Verified != 0 || *last.Unchecked != len(un.Files) {
		t.Errorf("--json: pulled event does not count the unchecked files: %s", lines[len(lines)-1])
	}

	// The revision names the listing; pulling it again is a cache hit.
	r2 := b.mustRun("pull", "20b", "--from", loc)
	if strings.TrimSpace(r2.stdout) != strings.TrimSpace(r.stdout) || strings.Contains(r2.stderr, "could not be checked") {
		t.Errorf("second pull: %s\n%s", r2.stdout, r2.stderr)
	}
	checkSummary(t, r2.stderr, len(files), 0)

	// The machine that pulled the model from the Hub knows its digests:
	// nothing is unchecked, and verified blobs are reused.
	a := s3Env(t, e, srv, false)
	r = a.mustRun("pull", "20b", "--from", loc)
	if strings.Contains(r.stderr, "could not be checked") {
		t.Errorf("known digests not used:\n%s", r.stderr)
	}
	checkSummary(t, r.stderr, len(files), 0)

	// sha256 metadata set by another tool is checked as the bytes arrive.
	shard := e.shards()[1]
	awsCLI(t, srv, "s3", "cp", filepath.Join(dir, shard.Path), "s3://models/meta/"+shard.Path,
		"--metadata", "sha256="+strings.Repeat("ab", 32))
	awsCLI(t, srv, "s3", "cp", filepath.Join(dir, "config.json"), "s3://models/meta/config.json")
	c := s3Env(t, e, srv, true)
	r = c.wantCode(exitVerify, "pull", "20b", "--from", "s3://models/meta", "--format", "custom")
	if !strings.Contains(r.stderr, "digest mismatch") || !strings.Contains(r.stderr, shard.Path) {
		t.Errorf("wrong sha256 metadata: %s", r.stderr)
	}
}

func TestS3Errors(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	e := newEnv(t, 1<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	a := s3Env(t, e, srv, false)
	a.mustRun("mirror", "20b", "--to", "s3://models/gpt-oss-20b")

	oneLine := func(name string, r result, words ...string) {
		t.Helper()
		msg := strings.TrimSpace(r.stderr)
		t.Logf("%s: %s", name, msg)
		if strings.Count(msg, "\n") != 0 {
			t.Errorf("%s: more than one line:\n%s", name, msg)
		}
		for _, secret := range []string{s3test.Secret, s3test.OtherSecret, "wrong-secret-value", "operation error"} {
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Errorf("%s: output contains %q:\n%s", name, secret, msg)
			}
		}
		for _, w := range words {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", name, msg, w)
			}
		}
	}
	fresh := func(extra ...string) *env {
		e2 := *e
		e2.home = filepath.Join(t.TempDir(), "home")
		e2.extra = append(append([]string{"HF_ENDPOINT=http://127.0.0.1:1"}, srv.Env()...), extra...)
		return &e2
	}
	r := fresh().wantCode(exitNotFound, "pull", "20b", "--from", "s3://no-such-bucket/gpt-oss-20b")
	oneLine("missing bucket", r, "no-such-bucket", "does not exist")
	r = fresh().wantCode(exitNotFound, "pull", "20b", "--from", "s3://models/nothing-here")
	oneLine("empty prefix", r, "s3://models/nothing-here", "no objects")
	r = fresh("AWS_SECRET_ACCESS_KEY=wrong-secret-value").wantCode(exitAuth, "pull", "20b", "--from", "s3://models/gpt-oss-20b")
	oneLine("wrong secret", r, "credentials were rejected", "AWS_PROFILE")
	other := fresh("AWS_ACCESS_KEY_ID="+s3test.OtherAccess, "AWS_SECRET_ACCESS_KEY="+s3test.OtherSecret)
	r = other.wantCode(exitAuth, "pull", "20b", "--from", "s3://models/gpt-oss-20b")
	oneLine("no permission", r, "access denied", "s3:ListBucket")
	r = fresh("AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=").wantCode(exitAuth, "pull", "20b", "--from", "s3://models/gpt-oss-20b")
	oneLine("no credentials", r, "no AWS credentials were found")
	fresh().wantCode(exitUsage, "pull", "20b", "--from", "s3://x")
	r = fresh().wantCode(exitAuth, "pull", "20b", "--from", "s3://models/gpt-oss-20b", "--no-sign-request")
	oneLine("unsigned, private bucket", r, "access denied", "unsigned requests")

	// A public bucket: no credentials needed (found none: unsigned), and
	// --no-sign-request works with credentials around too.
	srv.MakePublicBucket(t, "public-models")
	a.mustRun("mirror", "20b", "--to", "s3://public-models/gpt-oss-20b")
	anon := fresh("AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=")
	anon.checkSnapshot(strings.TrimSpace(anon.mustRun("pull", "20b", "--from", "s3://public-models/gpt-oss-20b").stdout), e.hfFiles())
	ns := fresh()
	ns.checkSnapshot(strings.TrimSpace(ns.mustRun("pull", "20b", "--from", "s3://public-models/gpt-oss-20b", "--no-sign-request").stdout), e.hfFiles())

	// Mirror without permission: refused before anything is uploaded.
	o := s3Env(t, e, srv, false, "AWS_ACCESS_KEY_ID="+s3test.OtherAccess, "AWS_SECRET_ACCESS_KEY="+s3test.OtherSecret)
	r = o.wantCode(exitAuth, "mirror", "20b", "--to", "s3://models/other")
	oneLine("mirror, no permission", r, "access denied")
	if _, err := os.Stat(srv.Path("models", "other")); err == nil {
		t.Error("a mirror without permission left objects")
	}
	r = a.wantCode(exitNotFound, "mirror", "20b", "--to", "s3://no-such-bucket/x")
	oneLine("mirror, missing bucket", r, "does not exist")
	// Another model's prefix is not overwritten.
	os.MkdirAll(srv.Path("models", "m2"), 0o755)
	os.WriteFile(srv.Path("models", "m2/gptoss-manifest.json"), []byte(`{"schemaVersion":1,"name":"openai/gpt-oss-120b","revision":"r","format":"hf","source":"x","files":[{"path":"a","size":1,"sha256":"`+strings.Repeat("0", 64)+`"}]}`), 0o644)
	r = a.wantCode(exitError, "mirror", "20b", "--to", "s3://models/m2")
	oneLine("another model's prefix", r, "already holds openai/gpt-oss-120b")
}

// Two cached formats of one revision share one prefix: both go up, the
// manifest lists both, and each pulls back on its own.
func TestS3MirrorTwoFormats(t *testing.T) {
	srv := s3test.Start(t)
	srv.MakeBucket(t, "models")
	e := newEnv(t, 1<<20, hubtest.Options{})
	// Both formats share the revision's snapshot directory: list the
	// original format's files before the hf format joins them.
	origFiles := listFiles(strings.TrimSpace(e.mustRun("pull", "20b", "--format", "original", "--no-convert").stdout))
	e.mustRun("pull", "20b", "--no-convert")
	a := s3Env(t, e, srv, false)
	const loc = "s3://models/gpt-oss-20b"
	r := a.mustRun("mirror", "20b", "--to", loc, "--json")
	events := 0
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.Contains(l, `"event":"mirrored"`) {
			events++
		}
	}
	if events != 2 {
		t.Fatalf("%d formats mirrored, want 2:\n%s", events, r.stdout)
	}
	for _, c := range []struct {
		want []string
		args []string
	}{{e.hfFiles(), nil}, {origFiles, []string{"--format", "original"}}} {
		b := s3Env(t, e, srv, true, "HF_ENDPOINT=http://127.0.0.1:1")
		got := strings.TrimSpace(b.mustRun(append([]string{"pull", "20b", "--from", loc, "--no-convert"}, c.args...)...).stdout)
		if filepath.Base(got) != e.repo.Commit {
			t.Errorf("snapshot %s, want revision %s", got, e.repo.Commit)
		}
		b.checkSnapshot(got, c.want)
	}
}

// listFiles lists the files under dir, slash-separated and sorted.
func listFiles(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}
