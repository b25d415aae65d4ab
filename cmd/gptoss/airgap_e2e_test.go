package main

// The air-gap drill: pull on a connected machine, export to a tar, import
// it on a machine with no network and GPTOSS_OFFLINE=1, verify.

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gptoss/gptoss/convert"
	"github.com/gptoss/gptoss/internal/hubtest"
	"github.com/gptoss/gptoss/registry"
)

// nowhere is an endpoint that refuses connections (the discard port on
// loopback): any attempt to use the network fails at once.
const nowhere = "http://127.0.0.1:9"

func hubRequests(e *env) int64 {
	var n int64
	for _, v := range e.hub.Stats().Requests {
		n += v
	}
	return n
}

func TestAirGapDrill(t *testing.T) {
	e := newEnv(t, 4<<20, hubtest.Options{})
	e.mustRun("pull", "20b")

	// Connected side: export to a tar; again, nothing to copy.
	tarPath := filepath.Join(t.TempDir(), "usb", "gpt-oss-20b.tar")
	if got := strings.TrimSpace(e.mustRun("export", "20b", "--to", tarPath).stdout); got != tarPath {
		t.Fatalf("export printed %q, want %q", got, tarPath)
	}
	r := e.mustRun("export", "20b", "--to", tarPath)
	if !strings.Contains(r.stderr, " 0 written") || !strings.Contains(r.stderr, "already there") {
		t.Errorf("re-export did not skip the blobs: %s", r.stderr)
	}
	if _, err := os.Stat(tarPath + ".staging"); !os.IsNotExist(err) {
		t.Errorf("staging directory left: %v", err)
	}

	// Air-gapped side: a fresh home, offline, no reachable endpoint.
	before := hubRequests(e)
	gap := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home"),
		extra: []string{"GPTOSS_OFFLINE=1", "HF_ENDPOINT=" + nowhere}}
	dir := strings.TrimSpace(gap.mustRun("import", tarPath).stdout)
	if dir != filepath.Join(gap.home, "snapshots", "openai", "gpt-oss-20b", e.repo.Commit) {
		t.Fatalf("import printed %q", dir)
	}
	gap.checkSnapshot(dir, e.hfFiles())
	gap.mustRun("verify", "20b")
	r = gap.mustRun("pull", "20b") // offline, as the user would after importing
	if strings.TrimSpace(r.stdout) != dir || !strings.Contains(r.stderr, "already in the cache") {
		t.Errorf("offline pull after import: %q %s", r.stdout, r.stderr)
	}
	// Importing again is a no-op.
	gap.mustRun("import", tarPath)

	// Offline and missing: exit 8, saying what is missing and what helps.
	r = gap.wantCode(exitOffline, "pull", "120b")
	for _, want := range []string{"openai/gpt-oss-120b", "format hf", "revision main", "gptoss import", "GPTOSS_OFFLINE"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("offline error does not say %q: %s", want, r.stderr)
		}
	}
	if n := hubRequests(e); n != before {
		t.Errorf("the air-gapped side made %d requests to the hub", n-before)
	}

	// pull --from the tar works without the hub too (not offline: the tar
	// is the source).
	from := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home3"),
		extra: []string{"HF_ENDPOINT=" + nowhere}}
	d3 := strings.TrimSpace(from.mustRun("pull", "20b", "--from", tarPath).stdout)
	from.checkSnapshot(d3, e.hfFiles())
	from.mustRun("verify", "20b")
}

func TestExportToDirectoryIsAConsistentLayout(t *testing.T) {
	e := newEnv(t, 2<<20, hubtest.Options{})
	e.mustRun("pull", "20b")
	out := filepath.Join(t.TempDir(), "layout")
	e.mustRun("export", "20b", "--to", out)
	if r := e.mustRun("export", "20b", "--to", out); !strings.Contains(r.stderr, " 0 written") {
		t.Errorf("re-export to a directory copied again: %s", r.stderr)
	}

	blob := func(d registry.Descriptor) []byte {
		t.Helper()
		hexd, ok := strings.CutPrefix(d.Digest, "sha256:")
		if !ok {
			t.Fatalf("digest %q", d.Digest)
		}
		p := filepath.Join(out, "blobs", "sha256", hexd)
		if got := fileSHA(t, p); got != hexd {
			t.Fatalf("blob %s hashes to %s", hexd, got)
		}
		b, _ := os.ReadFile(p)
		if int64(len(b)) != d.Size {
			t.Fatalf("blob %s: %d bytes, descriptor says %d", hexd, len(b), d.Size)
		}
		return b
	}
	lay, err := os.ReadFile(filepath.Join(out, "oci-layout"))
	if err != nil || !strings.Contains(string(lay), `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci-layout: %s %v", lay, err)
	}
	var idx struct {
		SchemaVersion int                   `json:"schemaVersion"`
		MediaType     string                `json:"mediaType"`
		Manifests     []registry.Descriptor `json:"manifests"`
	}
	b, _ := os.ReadFile(filepath.Join(out, "index.json"))
	if err := json.Unmarshal(b, &idx); err != nil || idx.SchemaVersion != 2 || len(idx.Manifests) != 1 {
		t.Fatalf("index.json: %s %v", b, err)
	}
	d := idx.Manifests[0]
	if ref := d.Annotations[registry.AnnotationRefName]; ref != "openai/gpt-oss-20b:hf" {
		t.Errorf("ref name %q", ref)
	}
	manBytes := blob(d)
	var man registry.OCIManifest
	if err := json.Unmarshal(manBytes, &man); err != nil {
		t.Fatal(err)
	}
	if man.ArtifactType != registry.ArtifactTypeModel || man.Config.MediaType != registry.MediaTypeModelConfig {
		t.Errorf("not a ModelPack manifest: %s", manBytes)
	}
	blob(man.Config)
	var paths []string
	for _, l := range man.Layers {
		blob(l)
		paths = append(paths, l.Annotations[registry.AnnotationFilepath])
	}
	if strings.Join(paths, "\n") != strings.Join(e.hfFiles(), "\n") {
		t.Errorf("layers:\n%s\nwant:\n%s", strings.Join(paths, "\n"), strings.Join(e.hfFiles(), "\n"))
	}
	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		raw, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+out+":openai/gpt-oss-20b:hf").Output()
		if err != nil {
			t.Errorf("skopeo inspect: %v", err)
		} else if !bytes.Equal(bytes.TrimSpace(raw), bytes.TrimSpace(manBytes)) {
			t.Errorf("skopeo sees another manifest: %s", raw)
		}
	} else {
		t.Log("skopeo not installed; checked index.json and blobs by hand")
	}

	// A blob that lies about its digest: import fails verification (exit
	// 5) and publishes nothing.
	var victim registry.Descriptor
	for _, l := range man.Layers {
		if l.Size > victim.Size {
			victim = l
		}
	}
	vp := filepath.Join(out, "blobs", "sha256", strings.TrimPrefix(victim.Digest, "sha256:"))
	good, _ := os.ReadFile(vp)
	bad := append([]byte(nil), good...)
	bad[len(bad)/2] ^= 0xff
	os.Chmod(vp, 0o644)
	if err := os.WriteFile(vp, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	gap := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home"),
		extra: []string{"GPTOSS_OFFLINE=1", "HF_ENDPOINT=" + nowhere}}
	gap.wantCode(exitVerify, "import", out)
	if _, err := os.Stat(filepath.Join(gap.home, "blobs", "sha256", strings.TrimPrefix(victim.Digest, "sha256:"))); err == nil {
		t.Error("the corrupted blob was published")
	}
	gap.wantCode(exitNotFound, "verify", "20b")

	// A hostile tar is refused before anything is written.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "oci-layout", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("{}"))
	tw.WriteHeader(&tar.Header{Name: "../../escape", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
	tw.Close()
	os.WriteFile(evil, buf.Bytes(), 0o644)
	r := gap.wantCode(exitError, "import", evil)
	if !strings.Contains(r.stderr, "../../escape") {
		t.Errorf("hostile tar error does not name the entry: %s", r.stderr)
	}
}

// listConverted returns the converted layout path `list --json` shows for
// the only model of a home.
func listConverted(t *testing.T, e *env) string {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("list", "--json").stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("list --json: %v %v", rows, err)
	}
	p, _ := rows[0]["converted"].(string)
	return p
}

// export --with-converted carries the GPU-ready layout; import brings it in
// (no conversion), verified. Without it, import converts locally and gets
// the same tensors.
func TestExportWithConvertedImport(t *testing.T) {
	e := newEnv(t, 2<<20, hubtest.Options{})
	e.mustRun("pull", "20b") // converts
	layout := listConverted(t, e)
	if layout == "" {
		t.Fatal("pull did not convert")
	}
	sum := filepath.Base(layout)

	tarPath := filepath.Join(t.TempDir(), "usb", "with.tar")
	r := e.mustRun("export", "20b", "--with-converted", "--to", tarPath)
	if !strings.Contains(r.stderr, "GPU-ready layout") {
		t.Errorf("export --with-converted: %s", r.stderr)
	}
	// The layout's index lists the referrer, whose subject is the model.
	idx := readTarEntry(t, tarPath, "index.json")
	var index struct {
		Manifests []registry.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(idx, &index); err != nil || len(index.Manifests) != 2 {
		t.Fatalf("index.json: %s %v", idx, err)
	}
	model, ref := index.Manifests[0], index.Manifests[1]
	if ref.ArtifactType != "application/vnd.gptoss.layout.v1" || ref.Annotations["org.gptoss.layout.subject"] != model.Digest ||
		ref.Annotations["org.gptoss.layout.blob"] != "sha256:"+sum {
		t.Errorf("referrer entry %+v for model %+v", ref, model)
	}
	var rm struct {
		ArtifactType string                `json:"artifactType"`
		Layers       []registry.Descriptor `json:"layers"`
		Subject      registry.Descriptor   `json:"subject"`
	}
	if err := json.Unmarshal(readTarEntry(t, tarPath, "blobs/sha256/"+strings.TrimPrefix(ref.Digest, "sha256:")), &rm); err != nil {
		t.Fatal(err)
	}
	if rm.ArtifactType != ref.ArtifactType || len(rm.Layers) != 1 || rm.Layers[0].Digest != "sha256:"+sum || rm.Subject.Digest != model.Digest {
		t.Errorf("referrer manifest %+v", rm)
	}

	gap := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home"),
		extra: []string{"GPTOSS_OFFLINE=1", "HF_ENDPOINT=" + nowhere}}
	r = gap.mustRun("import", tarPath)
	if strings.Contains(r.stderr, "converted openai") || !strings.Contains(r.stderr, "imported its GPU-ready layout") {
		t.Errorf("import with a carried layout:\n%s", r.stderr)
	}
	if got := listConverted(t, gap); filepath.Base(got) != sum || fileSHA(t, got) != sum {
		t.Errorf("imported layout %s, want sha256 %s", got, sum)
	}
	gap.mustRun("verify", "20b", "--level", "all")
	r = gap.mustRun("convert", "20b")
	if !strings.Contains(r.stderr, "already converted") {
		t.Errorf("convert after import: %s", r.stderr)
	}
	// Again, with --json: a no-op, the event names the layout.
	lines := strings.Split(strings.TrimSpace(gap.mustRun("import", tarPath, "--json").stdout), "\n")
	var ev map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil || ev["event"] != "imported" || ev["layout_sha256"] != sum {
		t.Errorf("import --json: %v %v", ev, err)
	}

	// Without --with-converted: import converts locally.
	plain := filepath.Join(t.TempDir(), "plain.tar")
	e.mustRun("export", "20b", "--to", plain)
	gap2 := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home2"),
		extra: []string{"GPTOSS_OFFLINE=1", "HF_ENDPOINT=" + nowhere}}
	r = gap2.mustRun("import", plain)
	if !strings.Contains(r.stderr, "converted openai/gpt-oss-20b") {
		t.Errorf("import without a layout did not convert:\n%s", r.stderr)
	}
	local := listConverted(t, gap2)
	if local == "" {
		t.Fatal("no local layout")
	}
	gap2.mustRun("verify", "20b", "--level", "all")
	sameTensors(t, layout, local)

	// --no-convert: nothing converted.
	gap3 := &env{t: t, hub: e.hub, repo: e.repo, src: e.src, home: filepath.Join(t.TempDir(), "home3"),
		extra: []string{"GPTOSS_OFFLINE=1", "HF_ENDPOINT=" + nowhere}}
	gap3.mustRun("import", plain, "--no-convert")
	if got := listConverted(t, gap3); got != "" {
		t.Errorf("import --no-convert converted: %s", got)
	}

	// Not converted: export --with-converted says so.
	e3 := newEnv(t, 1<<20, hubtest.Options{})
	e3.mustRun("pull", "20b", "--no-convert")
	r = e3.mustRun("export", "20b", "--with-converted", "--to", filepath.Join(t.TempDir(), "x.tar"))
	if !strings.Contains(r.stderr, "not converted") || !strings.Contains(r.stderr, "gptoss convert") {
		t.Errorf("export --with-converted of an unconverted model: %s", r.stderr)
	}
}

// readTarEntry returns the bytes of one entry of a tar.
func readTarEntry(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", path, name, err)
		}
		if h.Name == name {
			var b bytes.Buffer
			if _, err := b.ReadFrom(tr); err != nil {
				t.Fatal(err)
			}
			return b.Bytes()
		}
	}
}

// sameTensors checks that two layouts made from the same checkpoint are
// byte-identical but for the source manifest each records (the digest of
// the cache's manifest, which carries its commit time).
func sameTensors(t *testing.T, a, b string) {
	t.Helper()
	la, err := convert.OpenLayout(a)
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := convert.OpenLayout(b)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	if len(la.Tensors) == 0 || len(la.Tensors) != len(lb.Tensors) {
		t.Fatalf("%d vs %d tensors", len(la.Tensors), len(lb.Tensors))
	}
	for i, ta := range la.Tensors {
		tb := lb.Tensors[i]
		if ta.Name != tb.Name || ta.Offset != tb.Offset || ta.Size != tb.Size || ta.CRC32C != tb.CRC32C ||
			!bytes.Equal(la.Bytes(ta.Name), lb.Bytes(tb.Name)) {
			t.Errorf("tensor %s differs", ta.Name)
		}
	}
}
