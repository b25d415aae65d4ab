package main

// End-to-end against Azure Blob storage as Azurite emulates it
// (internal/azuritetest): mirror --to az://… then pull --from az://… into a
// fresh cache, a corrupted blob, an interrupted pull, SAS-token URLs, and
// the failures a user meets (bad key, missing container, read-only SAS).

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/gptoss/gptoss/internal/azuritetest"
	"github.com/gptoss/gptoss/internal/hubtest"
)

// azureEnv is the environment for one Azure credential setup: every
// AZURE_STORAGE_* variable is set (empty ones are unset for gptoss), so the
// machine's own never leak in, and the Hub is unreachable for pulls.
func azureEnv(kv ...string) []string {
	base := map[string]string{
		"AZURE_STORAGE_CONNECTION_STRING": "", "AZURE_STORAGE_KEY": "", "AZURE_STORAGE_SAS_TOKEN": "",
		"AZURE_STORAGE_BLOB_ENDPOINT": "", "AZURE_CLIENT_ID": "", "AZURE_TENANT_ID": "", "AZURE_CLIENT_SECRET": "",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		base[kv[i]] = kv[i+1]
	}
	var out []string
	for k, v := range base {
		out = append(out, k+"="+v)
	}
	return out
}

// fresh is a copy of e with an empty cache that cannot reach the Hub.
func (e *env) fresh(extra ...string) *env {
	e2 := *e
	e2.home = filepath.Join(e.t.TempDir(), "home")
	e2.extra = append([]string{"HF_ENDPOINT=http://127.0.0.1:1"}, extra...)
	return &e2
}

// oneLineError asserts the command failed with a single "gptoss: …" error
// line, without any of the secrets anywhere in its output.
func oneLineError(t *testing.T, r result, secrets ...string) string {
	t.Helper()
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if strings.HasPrefix(l, "gptoss: ") {
			errLines = append(errLines, l)
		}
	}
	if len(errLines) != 1 {
		t.Errorf("want one error line, got %d:\n%s", len(errLines), r.stderr)
	}
	for _, s := range secrets {
		if s != "" && (strings.Contains(r.stderr, s) || strings.Contains(r.stdout, s)) {
			t.Errorf("a secret was printed:\n%s%s", r.stdout, r.stderr)
		}
	}
	if len(errLines) == 0 {
		return ""
	}
	return errLines[0]
}

// noSecretInDir fails if any file under dir smaller than 1 MiB (manifests,
// index, journals, configs: not the model's blobs) contains a secret.
func noSecretInDir(t *testing.T, dir string, secrets ...string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err != nil || fi.Size() > 1<<20 {
			return nil
		}
		data, _ := os.ReadFile(p)
		for _, s := range secrets {
			if s != "" && bytes.Contains(data, []byte(s)) {
				t.Errorf("%s holds a secret", p)
			}
		}
		return nil
	})
}

func sasSig(sas string) string {
	_, sig, _ := strings.Cut(sas, "sig=")
	sig, _, _ = strings.Cut(sig, "&")
	return sig
}

func TestAzureMirrorPullRoundTrip(t *testing.T) {
	az := azuritetest.Start(t)
	az.CreateContainer(t, "models")
	proxy := az.Proxy(t)
	// The key travels in the connection string; the proxy counts bytes.
	conn := strings.Replace(az.ConnectionString(), az.Endpoint, proxy.Endpoint, 1)
	creds := azureEnv("AZURE_STORAGE_CONNECTION_STRING", conn)

	e := newEnv(t, 32<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	dir := strings.TrimSpace(e.mustRun("path", "20b").stdout)
	files := e.hfFiles()
	e.extra = creds
	const loc = "az://devstoreaccount1/models/gpt-oss-20b"

	r := e.mustRun("mirror", "20b", "--to", loc)
	t.Logf("mirror:\n%s%s", r.stderr, r.stdout)
	if strings.Contains(r.stdout+r.stderr, az.Key) {
		t.Fatal("the account key was printed")
	}
	// What the storage account holds: every file at its path with its
	// sha256 in the metadata, and the manifest.
	cont := az.Container(t, "models")
	ctx := context.Background()
	for _, p := range append(files, "gptoss-manifest.json") {
		props, err := cont.NewBlobClient("gpt-oss-20b/"+p).GetProperties(ctx, nil)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if p == "gptoss-manifest.json" {
			continue
		}
		var sha string
		for k, v := range props.Metadata {
			if strings.EqualFold(k, "gptoss_sha256") && v != nil {
				sha = *v
			}
		}
		if sha != fileSHA(t, filepath.Join(e.src, p)) || *props.ContentLength != fileSize(t, filepath.Join(e.src, p)) {
			t.Errorf("%s: sha256 metadata %q, size %d", p, sha, *props.ContentLength)
		}
	}
	// What Microsoft's own tool sees: azcopy downloads the prefix, with a
	// read-only SAS, byte-identical to the source, manifest beside it.
	t.Run("azcopy reads the mirror", func(t *testing.T) {
		bin := azuritetest.RequireAzCopy(t)
		out := t.TempDir()
		c := exec.Command(bin, "copy", az.Endpoint+"/models/gpt-oss-20b/*?"+az.SAS(t, "models", "rl"), out,
			"--recursive", "--from-to", "BlobLocal", "--log-level", "ERROR", "--output-level", "quiet")
		c.Env = append(os.Environ(), "AZCOPY_LOG_LOCATION="+t.TempDir(), "AZCOPY_JOB_PLAN_LOCATION="+t.TempDir(), "AZCOPY_DISABLE_SYSLOG=true")
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("azcopy: %v\n%s", err, b)
		}
		for _, p := range files {
			if fileSHA(t, filepath.Join(out, p)) != fileSHA(t, filepath.Join(e.src, p)) {
				t.Errorf("%s: azcopy got other bytes", p)
			}
		}
		data, err := os.ReadFile(filepath.Join(out, "gptoss-manifest.json"))
		if err != nil || !bytes.Contains(data, []byte(e.repo.Commit)) {
			t.Errorf("manifest: %v\n%s", err, data)
		}
	})

	// The other way: a prefix azcopy filled (no manifest, no sha256
	// metadata). A fresh cache pulls it and says which files it could not
	// check; a cache that verified 20b before checks every file.
	t.Run("a prefix azcopy uploaded", func(t *testing.T) {
		bin := azuritetest.RequireAzCopy(t)
		up := t.TempDir()
		for _, p := range files {
			data, err := os.ReadFile(filepath.Join(e.src, p))
			if err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Dir(filepath.Join(up, p)), 0o755)
			os.WriteFile(filepath.Join(up, p), data, 0o644)
		}
		c := exec.Command(bin, "copy", up+"/*", az.Endpoint+"/models/azcopied?"+az.SAS(t, "models", "racwl"),
			"--recursive", "--from-to", "LocalBlob", "--log-level", "ERROR", "--output-level", "quiet")
		c.Env = append(os.Environ(), "AZCOPY_LOG_LOCATION="+t.TempDir(), "AZCOPY_JOB_PLAN_LOCATION="+t.TempDir(), "AZCOPY_DISABLE_SYSLOG=true")
		if b, err := c.CombinedOutput(); err != nil {
			t.Fatalf("azcopy: %v\n%s", err, b)
		}
		e7 := e.fresh(creds...)
		e7.t = t
		r := e7.mustRun("pull", "20b", "--from", "az://devstoreaccount1/models/azcopied")
		e7.checkSnapshot(strings.TrimSpace(r.stdout), files)
		if !strings.Contains(r.stderr, "could not be checked") {
			t.Errorf("no word about unchecked files:\n%s", r.stderr)
		}
		checkSummary(t, r.stderr, len(files), len(files))
		// A cache that verified 20b before (here from the gptoss mirror)
		// knows every file's digest: each is recognised as a blob it holds.
		e8 := e.fresh(creds...)
		e8.t = t
		e8.mustRun("pull", "20b", "--from", loc)
		r = e8.mustRun("pull", "20b", "--from", "az://devstoreaccount1/models/azcopied")
		if strings.Contains(r.stderr, "could not be checked") || !strings.Contains(r.stderr, "already in the cache") {
			t.Errorf("the digests the cache knows were not used:\n%s", r.stderr)
		}
	})

	// Again: everything is there already.
	r = e.mustRun("mirror", "20b", "--to", loc, "--json")
	if row := lastMirrorRow(t, r.stdout); row.Uploaded != 0 || row.Skipped != len(files) {
		t.Errorf("second mirror: %+v", row)
	}

	// A fresh cache that can reach only the storage account.
	e2 := e.fresh(creds...)
	r = e2.mustRun("pull", "20b", "--from", loc)
	dir2 := strings.TrimSpace(r.stdout)
	if filepath.Base(dir2) != filepath.Base(dir) || filepath.Base(dir2) != e.repo.Commit {
		t.Errorf("snapshot %s, want revision %s", dir2, e.repo.Commit)
	}
	e2.checkSnapshot(dir2, files)
	e2.mustRun("verify", "20b")
	e2.checkBlobsVerified()
	// GPTOSS_MIRROR=az://… serves a plain `pull 20b` too.
	e3 := e.fresh(append(creds, "GPTOSS_MIRROR="+loc)...)
	e3.checkSnapshot(strings.TrimSpace(e3.mustRun("pull", "20b").stdout), files)

	t.Run("throttled downloads are retried", func(t *testing.T) {
		// Azure answers an overloaded account with 503 ServerBusy: on the
		// manifest and on the shards.
		fired := proxy.Fired()
		isManifest := func(r *http.Request) bool {
			return azuritetest.IsBlobGet(r) && strings.HasSuffix(r.URL.Path, "/gptoss-manifest.json")
		}
		isShard := func(r *http.Request) bool {
			return azuritetest.IsBlobGet(r) && strings.Contains(r.URL.Path, "/model-")
		}
		proxy.AddFault(azuritetest.Fault{Match: isManifest, Count: 2, Status: 503, Code: "ServerBusy"})
		proxy.AddFault(azuritetest.Fault{Match: isShard, Count: 6, Status: 503, Code: "ServerBusy"})
		defer proxy.ClearFaults()
		e9 := e.fresh(creds...)
		e9.t = t
		r := e9.mustRun("pull", "20b", "--from", loc)
		e9.checkSnapshot(strings.TrimSpace(r.stdout), files)
		if n := proxy.Fired() - fired; n != 8 {
			t.Errorf("%d faults fired, want 8", n)
		}
	})

	t.Run("interrupted pull resumes", func(t *testing.T) {
		e4 := e.fresh(creds...)
		e4.t = t
		const conns, part = 4, 1 << 20
		var total int64
		for _, p := range files {
			total += fileSize(t, filepath.Join(e.src, p))
		}
		proxy.ResetBytes()
		proxy.SetRate(8 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := e4.cmd(ctx, "pull", "20b", "--from", loc, "--connections", fmt.Sprint(conns), "--part-size", "1MiB")
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		for proxy.BodyBytes() < total/2 {
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				t.Fatalf("pull did not progress:\n%s", errb.String())
			}
		}
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		proxy.SetRate(0)
		noSecretInDir(t, e4.home, az.Key) // the journals of the interrupted pull
		first := proxy.BodyBytes()
		if first >= total {
			t.Fatalf("the pull finished before it was interrupted (%d of %d bytes)", first, total)
		}
		proxy.ResetBytes()
		r := e4.mustRun("pull", "20b", "--from", loc, "--connections", fmt.Sprint(conns), "--part-size", "1MiB")
		second := proxy.BodyBytes()
		// The parts in flight are lost, and the manifest is read again:
		// allow twice the parts in flight. A pull that started over would
		// fetch all of total.
		slack := int64(2 * conns * part)
		t.Logf("total %d, before the kill %d, after %d", total, first, second)
		if second > total-first+slack || second >= total {
			t.Errorf("the rerun fetched %d bytes; only %d were missing (+%d in flight allowed)", second, total-first, slack)
		}
		if second < total-first {
			t.Errorf("the rerun fetched %d bytes but %d were missing: accounting is off", second, total-first)
		}
		e4.checkSnapshot(strings.TrimSpace(r.stdout), files)
		e4.mustRun("verify", "20b")
	})

	t.Run("interrupted mirror resumes", func(t *testing.T) {
		// 1 MiB blocks (GPTOSS_AZURE_BLOCK_MB), one file at a time, upload
		// rate capped; killed once some file has staged blocks.
		const loc2 = "az://devstoreaccount1/models/resumed"
		m := *e
		m.t = t
		m.extra = append(append([]string{}, creds...), "GPTOSS_AZURE_BLOCK_MB=1")
		var total int64
		for _, p := range files {
			total += fileSize(t, filepath.Join(e.src, p))
		}
		// staged sums what the service holds under resumed/: committed
		// blobs, and blocks staged but not committed.
		staged := func() (committed, uncommitted int64) {
			for _, p := range files {
				bl, err := cont.NewBlockBlobClient("resumed/"+p).GetBlockList(ctx, blockblob.BlockListTypeAll, nil)
				if err != nil {
					continue
				}
				for _, b := range bl.CommittedBlocks {
					committed += *b.Size
				}
				for _, b := range bl.UncommittedBlocks {
					uncommitted += *b.Size
				}
				if len(bl.CommittedBlocks) == 0 && len(bl.UncommittedBlocks) == 0 {
					// A small file sent in one Put Blob has no block list.
					if props, err := cont.NewBlobClient("resumed/"+p).GetProperties(ctx, nil); err == nil {
						committed += *props.ContentLength
					}
				}
			}
			return
		}
		proxy.ResetBytes()
		proxy.SetRate(8 << 20)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := m.cmd(ctx, "mirror", "20b", "--to", loc2, "--connections", "1")
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		for {
			time.Sleep(20 * time.Millisecond)
			if ctx.Err() != nil {
				t.Fatalf("mirror did not progress:\n%s", errb.String())
			}
			if proxy.UpBytes() < total/3 {
				continue
			}
			if _, u := staged(); u > 0 {
				break
			}
		}
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		proxy.SetRate(0)
		if _, err := cont.NewBlobClient("resumed/gptoss-manifest.json").GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
			t.Fatalf("the killed mirror published its manifest (%v)", err)
		}
		// Blocks whose bytes were sent before the kill may still land:
		// wait until the service's view stops changing.
		committed, uncommitted := staged()
		for range 50 {
			time.Sleep(200 * time.Millisecond)
			c2, u2 := staged()
			if c2 == committed && u2 == uncommitted {
				break
			}
			committed, uncommitted = c2, u2
		}
		proxy.ResetBytes()
		m.mustRun("mirror", "20b", "--to", loc2, "--connections", "1")
		props, err := cont.NewBlobClient("resumed/gptoss-manifest.json").GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Exactly what was missing goes up again, plus the manifest: no
		// staged block twice.
		want := total - committed - uncommitted + *props.ContentLength
		t.Logf("total %d: %d committed and %d staged before the kill; the rerun uploaded %d", total, committed, uncommitted, proxy.UpBytes())
		if got := proxy.UpBytes(); got != want {
			t.Errorf("the rerun uploaded %d bytes, want %d", got, want)
		}
		e6 := e.fresh(creds...)
		e6.t = t
		e6.checkSnapshot(strings.TrimSpace(e6.mustRun("pull", "20b", "--from", loc2).stdout), files)
	})

	t.Run("corrupted blob is caught", func(t *testing.T) {
		// Replace a shard with other bytes of the same size, keeping its
		// sha256 metadata: only hashing the bytes can tell.
		shard := e.shards()[0]
		key := "gpt-oss-20b/" + shard.Path
		props, err := cont.NewBlobClient(key).GetProperties(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		bad := make([]byte, shard.Size)
		rand.Read(bad)
		if _, err := cont.NewBlockBlobClient(key).UploadBuffer(ctx, bad, &blockblob.UploadBufferOptions{Metadata: props.Metadata}); err != nil {
			t.Fatal(err)
		}
		e5 := e.fresh(creds...)
		e5.t = t
		r := e5.wantCode(exitVerify, "pull", "20b", "--from", loc)
		if l := oneLineError(t, r); !strings.Contains(l, "digest mismatch") || !strings.Contains(l, shard.Path) {
			t.Errorf("error: %s", l)
		}
		blobs := e5.checkBlobsVerified()
		if blobs[shard.SHA256] {
			t.Error("the corrupted file was published")
		}
		if out := e5.mustRun("list", "--json").stdout; strings.TrimSpace(out) != "[]" {
			t.Errorf("a model was committed: %s", out)
		}
		// Once the bad blob is gone, a mirror uploads it again and the
		// same pull completes.
		if _, err := cont.NewBlobClient(key).Delete(ctx, nil); err != nil {
			t.Fatal(err)
		}
		e.mustRun("mirror", "20b", "--to", loc)
		e5.checkSnapshot(strings.TrimSpace(e5.mustRun("pull", "20b", "--from", loc).stdout), files)
	})
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestAzureSASAndErrors(t *testing.T) {
	az := azuritetest.Start(t)
	az.CreateContainer(t, "models")
	rw, ro := az.SAS(t, "models", "racwdl"), az.SAS(t, "models", "rl")
	e := newEnv(t, 2<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	files := e.hfFiles()
	ep := azureEnv("AZURE_STORAGE_BLOB_ENDPOINT", az.Endpoint)
	secrets := []string{rw, ro, sasSig(rw), sasSig(ro), az.Key}

	// A read-write SAS in the URL is all a mirror needs; it is never shown.
	e.extra = ep
	r := e.mustRun("mirror", "20b", "--to", "az://devstoreaccount1/models/m20?"+rw)
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("a SAS token was printed:\n%s%s", r.stdout, r.stderr)
		}
	}
	if !strings.Contains(r.stdout, "az://devstoreaccount1/models/m20") {
		t.Errorf("mirror printed %q", r.stdout)
	}
	// The https form names the same place: everything is already there.
	r = e.mustRun("mirror", "20b", "--to", "https://devstoreaccount1.blob.core.windows.net/models/m20?"+rw, "--json")
	if row := lastMirrorRow(t, r.stdout); row.Skipped != len(files) || strings.Contains(r.stdout+r.stderr, sasSig(rw)) {
		t.Errorf("mirror to the https form: %+v", row)
	}
	// A read-only SAS pulls, in both URL forms (the https one pointed at
	// Azurite by AZURE_STORAGE_BLOB_ENDPOINT), and the JSON events hold no
	// token either.
	for _, from := range []string{
		"az://devstoreaccount1/models/m20?" + ro,
		"https://devstoreaccount1.blob.core.windows.net/models/m20?" + ro,
	} {
		e2 := e.fresh(ep...)
		r := e2.mustRun("pull", "20b", "--from", from, "--json")
		for _, s := range secrets {
			if strings.Contains(r.stdout+r.stderr, s) {
				t.Fatalf("pull --from %s printed a SAS token:\n%s%s", from[:40], r.stdout, r.stderr)
			}
		}
		e2.checkSnapshot(strings.TrimSpace(e2.mustRun("path", "20b").stdout), files)
		// Nor does anything the cache keeps (manifests, index, journals).
		noSecretInDir(t, e2.home, secrets...)
	}
	// AZURE_STORAGE_SAS_TOKEN instead of the URL, and --endpoint naming
	// the emulator's host only (path-style: the account is added).
	e2 := e.fresh(azureEnv("AZURE_STORAGE_SAS_TOKEN", "?"+ro)...)
	r = e2.mustRun("pull", "20b", "--from", "az://devstoreaccount1/models/m20", "--endpoint", "http://"+az.Host)
	e2.checkSnapshot(strings.TrimSpace(r.stdout), files)

	// No permission: a read-only SAS used for a mirror.
	e.extra = ep
	r = e.wantCode(exitAuth, "mirror", "20b", "--to", "az://devstoreaccount1/models/other?"+ro)
	if l := oneLineError(t, r, secrets...); !strings.Contains(l, "sp=racwl") {
		t.Errorf("read-only SAS: %s", l)
	}
	// A tampered SAS.
	bad := strings.Replace(ro, "sig=", "sig=AAAA", 1)
	r = e.fresh(ep...).wantCode(exitAuth, "pull", "20b", "--from", "az://devstoreaccount1/models/m20?"+bad)
	if l := oneLineError(t, r, append(secrets, bad, sasSig(bad))...); !strings.Contains(l, "SAS") {
		t.Errorf("tampered SAS: %s", l)
	}
	// A bad account key.
	wrongKey := "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmcga2V5IHdyb25nIGtleQ=="
	keyEnv := azureEnv("AZURE_STORAGE_BLOB_ENDPOINT", az.Endpoint, "AZURE_STORAGE_KEY", wrongKey)
	r = e.fresh(keyEnv...).wantCode(exitAuth, "pull", "20b", "--from", "az://devstoreaccount1/models/m20")
	if l := oneLineError(t, r, wrongKey); !strings.Contains(l, "AZURE_STORAGE_KEY") || !strings.Contains(l, "wrong account key") {
		t.Errorf("bad key: %s", l)
	}
	e.extra = keyEnv
	r = e.wantCode(exitAuth, "mirror", "20b", "--to", "az://devstoreaccount1/models/m20")
	oneLineError(t, r, wrongKey)
	// No credentials at all, on an http endpoint: what to set.
	r = e.fresh(ep...).wantCode(exitAuth, "pull", "20b", "--from", "az://devstoreaccount1/models/m20")
	if l := oneLineError(t, r); !strings.Contains(l, "AZURE_STORAGE_CONNECTION_STRING") {
		t.Errorf("no credentials: %s", l)
	}
	// A missing container: not found, and how to create it.
	good := azureEnv("AZURE_STORAGE_BLOB_ENDPOINT", az.Endpoint, "AZURE_STORAGE_KEY", az.Key)
	e.extra = good
	r = e.wantCode(exitNotFound, "mirror", "20b", "--to", "az://devstoreaccount1/nosuch/m20")
	if l := oneLineError(t, r, az.Key); !strings.Contains(l, `container "nosuch" does not exist`) {
		t.Errorf("missing container: %s", l)
	}
	r = e.fresh(good...).wantCode(exitNotFound, "pull", "20b", "--from", "az://devstoreaccount1/nosuch/m20")
	oneLineError(t, r, az.Key)
	// An empty prefix: not found.
	r = e.fresh(good...).wantCode(exitNotFound, "pull", "20b", "--from", "az://devstoreaccount1/models/nothing-here")
	oneLineError(t, r)
	// A container with public read access: --no-sign-request pulls without
	// credentials; on a private one it says the container is not public.
	if _, err := az.Container(t, "public").Create(context.Background(), &container.CreateOptions{Access: to.Ptr(container.PublicAccessTypeContainer)}); err != nil {
		t.Fatal(err)
	}
	e.extra = good
	e.mustRun("mirror", "20b", "--to", "az://devstoreaccount1/public/m20")
	e3 := e.fresh(ep...)
	r = e3.mustRun("pull", "20b", "--from", "az://devstoreaccount1/public/m20", "--no-sign-request")
	e3.checkSnapshot(strings.TrimSpace(r.stdout), files)
	r = e.fresh(ep...).wantCode(exitAuth, "pull", "20b", "--from", "az://devstoreaccount1/models/m20", "--no-sign-request")
	if l := oneLineError(t, r); !strings.Contains(l, "does not allow public (anonymous) access") {
		t.Errorf("anonymous, private container: %s", l)
	}
	// Unreachable, with a SAS in the URL: exit 7, and still no token.
	r = e.fresh(azureEnv("AZURE_STORAGE_BLOB_ENDPOINT", "http://127.0.0.1:1")...).wantCode(exitUnavailable, "pull", "20b", "--from", "az://devstoreaccount1/models/m20?"+ro)
	oneLineError(t, r, secrets...)
	// Malformed locations are usage errors that do not echo the query.
	r = e.fresh().wantCode(exitUsage, "pull", "20b", "--from", "az://devstoreaccount1/Bad_Container/x?"+ro)
	oneLineError(t, r, secrets...)
}
