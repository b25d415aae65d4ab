package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/gptoss/gptoss/registry"
	"github.com/gptoss/gptoss/registry/oci/ocitest"
)

// orasBin finds the oras CLI (go install oras.land/oras/cmd/oras@v1.3.6);
// the interop test is skipped without it (CI does not install it).
func orasBin(t *testing.T) string {
	if p, err := exec.LookPath("oras"); err == nil {
		return p
	}
	gp := os.Getenv("GOPATH")
	if gp == "" {
		gp = build.Default.GOPATH
	}
	p := filepath.Join(filepath.SplitList(gp)[0], "bin", "oras")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	t.Skip("oras not installed (go install oras.land/oras/cmd/oras@v1.3.6)")
	return ""
}

func oras(t *testing.T, bin, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("oras %v: %v\n%s", args, err, out)
	}
	return out
}

// oras reads what gptoss pushed (manifest and blobs), and gptoss reads an
// artifact oras pushed (file names in org.opencontainers.image.title).
func TestOrasInterop(t *testing.T) {
	bin := orasBin(t)
	reg := ocitest.Start(t, nil)
	ctx := context.Background()

	blobs, m := makeFiles(t, map[string]int{"config.json": 200, "model.safetensors": 300 << 10})
	ref := reg.Host + "/interop/gptoss:hf"
	dst, _ := New("oci://"+ref, Options{ChunkSize: 100 << 10})
	push(t, dst, blobs, m)

	dir := t.TempDir()
	var om registry.OCIManifest
	if err := json.Unmarshal(oras(t, bin, dir, "manifest", "fetch", "--plain-http", ref), &om); err != nil {
		t.Fatal(err)
	}
	if om.ArtifactType != registry.ArtifactTypeModel || len(om.Layers) != len(blobs) {
		t.Fatalf("oras sees %+v", om)
	}
	for _, b := range blobs {
		out := filepath.Join(dir, "blob")
		oras(t, bin, dir, "blob", "fetch", "--plain-http", "--output", out, reg.Host+"/interop/gptoss@sha256:"+b.f.SHA256)
		got, _ := os.ReadFile(out)
		if !bytes.Equal(got, b.data) {
			t.Errorf("oras fetched other bytes for %s", b.f.Path)
		}
	}

	// The other way: oras pushes a ModelPack artifact, gptoss pulls it.
	src := t.TempDir()
	for _, b := range blobs {
		os.WriteFile(filepath.Join(src, b.f.Path), b.data, 0o644)
	}
	os.WriteFile(filepath.Join(src, "modelconfig.json"), []byte(`{"descriptor":{"name":"x"},"config":{},"modelfs":{"type":"layers","diffIds":[]}}`), 0o644)
	oref := reg.Host + "/interop/from-oras:v1"
	oras(t, bin, src, "push", "--plain-http", oref, "--artifact-type", registry.ArtifactTypeModel,
		"--config", "modelconfig.json:"+registry.MediaTypeModelConfig,
		"config.json:"+registry.MediaTypeWeightConfig, "model.safetensors:"+registry.MediaTypeWeightRaw)
	cl, _ := New("oci://"+oref, Options{})
	got, err := cl.Resolve(ctx, registry.Ref{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != 2 {
		t.Fatalf("files %+v", got.Files)
	}
	for _, b := range blobs {
		f, ok := got.Lookup(b.f.Path)
		if !ok || f.SHA256 != b.f.SHA256 {
			t.Fatalf("%s: %+v", b.f.Path, f)
		}
		if !bytes.Equal(readAll(t, cl, f, 0, -1), b.data) {
			t.Errorf("%s differs", f.Path)
		}
	}
}
