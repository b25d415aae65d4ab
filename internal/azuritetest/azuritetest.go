// Package azuritetest starts Azurite, Microsoft's Azure Storage emulator
// (npm azurite@3.37.0, the blob service only), on a free loopback port for
// tests, with its storage in a temporary directory, and stops it by PID when
// the test ends.
//
// The binary is found through AZURITE_BLOB (a path to azurite-blob; only
// there, when set), else
// .tools/npm/node_modules/.bin/azurite-blob in the module root (where
// .ci/run installs it), else azurite-blob on PATH. When none is there the
// test is skipped, or fails when CI is set (CI installs it).
//
// Azurite speaks the real Blob REST protocol with shared-key and SAS
// authentication (signatures and SAS permissions are checked), path-style:
// the account is the first path element of the endpoint,
// http://127.0.0.1:PORT/devstoreaccount1. --skipApiVersionCheck is needed
// because azblob v1.8.x sends a newer x-ms-version than Azurite 3.37 knows.
package azuritetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"

	"github.com/gptoss/gptoss/internal/testproc"
)

// The emulator's well-known development account (public, documented by
// Microsoft; not a secret).
const (
	Account = "devstoreaccount1"
	Key     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// Server is a running Azurite blob service.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT/devstoreaccount1, the blob service URL
	Host     string // 127.0.0.1:PORT
	Dir      string // Azurite's storage directory
	Account  string
	Key      string
	pid      int
}

// ConnectionString is the account's connection string with this server's
// BlobEndpoint, as AZURE_STORAGE_CONNECTION_STRING takes it.
func (s *Server) ConnectionString() string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;", s.Account, s.Key, s.Endpoint)
}

// PID is Azurite's process id.
func (s *Server) PID() int { return s.pid }

// Binary returns the azurite-blob executable, or "".
func Binary() string {
	if p := os.Getenv("AZURITE_BLOB"); p != "" {
		// Only this one, when named (a wrong path is "missing").
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if root := moduleRoot(); root != "" {
		p := filepath.Join(root, ".tools", "npm", "node_modules", ".bin", "azurite-blob")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p
	}
	return ""
}

// moduleRoot walks up from the working directory to the go.mod.
func moduleRoot() string {
	d, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		up := filepath.Dir(d)
		if up == d {
			return ""
		}
		d = up
	}
}

// Require skips (or, with CI set, fails) the test when Azurite is not
// installed, and returns the binary.
func Require(t testing.TB) string {
	t.Helper()
	bin := Binary()
	if bin == "" {
		testproc.Missing(t, "azurite-blob not installed (npm install --prefix .tools/npm azurite@3.37.0, or set AZURITE_BLOB)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		testproc.Missing(t, "node is not installed; Azurite needs it")
	}
	return bin
}

// Start runs Azurite for the test's lifetime.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	var data string
	p := testproc.Start(t, testproc.Spec{
		Name: "azurite", Dir: dir,
		Command: func(_ string, port, try int) ([]string, error) {
			data = filepath.Join(dir, fmt.Sprintf("data%d", try))
			return []string{bin, "--blobHost", "127.0.0.1", "--blobPort", fmt.Sprint(port),
				"--location", data, "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"}, os.MkdirAll(data, 0o755)
		},
		// Any answer will do: an unauthenticated list is refused with 403,
		// which proves it is up.
		Ready: testproc.Answers("/"+Account+"?comp=list", 0),
	})
	return &Server{Endpoint: "http://" + p.Addr + "/" + Account, Host: p.Addr, Dir: data, Account: Account, Key: Key, pid: p.PID}
}

func (s *Server) cred(t testing.TB) *service.SharedKeyCredential {
	t.Helper()
	c, err := service.NewSharedKeyCredential(s.Account, s.Key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Container returns a shared-key client for a container (which may not
// exist yet).
func (s *Server) Container(t testing.TB, name string) *container.Client {
	t.Helper()
	c, err := container.NewClientWithSharedKeyCredential(s.Endpoint+"/"+name, s.cred(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CreateContainer creates a container and returns its client.
func (s *Server) CreateContainer(t testing.TB, name string) *container.Client {
	t.Helper()
	c := s.Container(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Create(ctx, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
	return c
}

// SAS returns a container SAS token (the query string, no "?") with the
// given permissions ("rl" read+list, "racwdl" everything), valid for a day.
func (s *Server) SAS(t testing.TB, containerName, perms string) string {
	t.Helper()
	q, err := ContainerSAS(containerName, perms)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// ContainerSAS signs a container SAS token for the development account
// with permissions from "racwdl", valid from an hour ago for a day.
func ContainerSAS(containerName, perms string) (string, error) {
	var p sas.ContainerPermissions
	for _, r := range perms {
		switch r {
		case 'r':
			p.Read = true
		case 'a':
			p.Add = true
		case 'c':
			p.Create = true
		case 'w':
			p.Write = true
		case 'd':
			p.Delete = true
		case 'l':
			p.List = true
		default:
			return "", fmt.Errorf("SAS permission %q: want some of racwdl", r)
		}
	}
	cred, err := service.NewSharedKeyCredential(Account, Key)
	if err != nil {
		return "", err
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-time.Hour).UTC(),
		ExpiryTime:    time.Now().Add(24 * time.Hour).UTC(),
		Permissions:   p.String(),
		ContainerName: containerName,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", err
	}
	return q.Encode(), nil
}

// AzCopy returns Microsoft's azcopy (npm @azure-tools/azcopy-linux, in
// .tools/npm where .ci/run installs it, or AZCOPY), or "".
func AzCopy() string {
	if p := os.Getenv("AZCOPY"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return ""
		}
		return p
	}
	if root := moduleRoot(); root != "" {
		p := filepath.Join(root, ".tools", "npm", "node_modules", "@azure-tools", "azcopy-linux", "dist", "bin", "azcopy_linux_amd64")
		if fi, err := os.Stat(p); err == nil {
			if fi.Mode()&0o111 == 0 {
				os.Chmod(p, 0o755) // npm does not keep the mode
			}
			return p
		}
	}
	if p, err := exec.LookPath("azcopy"); err == nil {
		return p
	}
	return ""
}

// RequireAzCopy skips (or, with CI set, fails) the test when azcopy is not
// installed or cannot run (it needs libsecret-1-0), and returns it.
func RequireAzCopy(t testing.TB) string {
	t.Helper()
	bin := AzCopy()
	if bin == "" {
		testproc.Missing(t, "azcopy not installed (npm install --prefix .tools/npm @azure-tools/azcopy-linux@10.32.2, or set AZCOPY)")
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
		testproc.Missing(t, fmt.Sprintf("azcopy does not run (apt-get install libsecret-1-0?): %v: %s", err, strings.TrimSpace(string(out))))
	}
	return bin
}
