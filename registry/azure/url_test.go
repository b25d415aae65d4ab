package azure

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gptoss/gptoss/registry"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in                                  string
		account, container, prefix, ep, sas string
	}{
		{"az://acct1/models/gpt-oss-20b", "acct1", "models", "gpt-oss-20b", "", ""},
		{"az://acct1/models", "acct1", "models", "", "", ""},
		{"az://acct1/models/", "acct1", "models", "", "", ""},
		{"az://acct1/models/a/b?sv=2024&sig=abc%2Bdef", "acct1", "models", "a/b", "", "sv=2024&sig=abc%2Bdef"},
		{"https://acct1.blob.core.windows.net/models/x/y", "acct1", "models", "x/y", "https://acct1.blob.core.windows.net", ""},
		{"https://acct1.blob.core.windows.net/models?sp=rl&sig=zz", "acct1", "models", "", "https://acct1.blob.core.windows.net", "sp=rl&sig=zz"},
		{"https://acct1.blob.core.chinacloudapi.cn/m-1/p", "acct1", "m-1", "p", "https://acct1.blob.core.chinacloudapi.cn", ""},
	} {
		l, err := ParseURL(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if l.Account != c.account || l.Container != c.container || l.Prefix != strings.TrimSuffix(c.prefix, "/") && l.Prefix != c.prefix || l.Endpoint != c.ep || l.SAS != c.sas {
			t.Errorf("%s: %+v", c.in, l)
		}
		if strings.Contains(l.String(), "sig") {
			t.Errorf("String() shows the SAS: %s", l)
		}
	}
	for _, in := range []string{
		"az://acct1", "az://acct1/", "az://AC/models", "az://acct1/Models", "az://acct1/a--b/x", "az://acct1/ab",
		"https://example.com/models", "https://u:p@acct1.blob.core.windows.net/models",
		"az://acct1/models?sv=1&sp=r", // a query without a signature is not a SAS
		"s3://bucket/x",
	} {
		_, err := ParseURL(in)
		if err == nil {
			t.Errorf("%s: accepted", in)
			continue
		}
		if !errors.Is(err, registry.ErrInvalidRef) {
			t.Errorf("%s: %v is not ErrInvalidRef", in, err)
		}
		if strings.Contains(err.Error(), "u:p") {
			t.Errorf("the error shows credentials: %v", err)
		}
		if !strings.Contains(in, "?") {
			if _, err := ParseURL(in + "?sv=1&sig=SECRETSIG"); err == nil || strings.Contains(err.Error(), "SECRETSIG") {
				t.Errorf("%s with a SAS: %v", in, err)
			}
		}
	}
	for in, want := range map[string]bool{
		"az://a/b": true, "https://acct.blob.core.windows.net/c": true, "http://acct.blob.core.windows.net/c": false,
		"https://huggingface.co": false, "https://blob.core.windows.net.evil.com/x": false, "oci://x/y": false,
	} {
		if IsURL(in) != want {
			t.Errorf("IsURL(%s) = %v", in, !want)
		}
	}
}

func TestServiceURL(t *testing.T) {
	for _, c := range []struct{ ep, want string }{
		{"", "https://acct1.blob.core.windows.net"},
		{"http://127.0.0.1:10000", "http://127.0.0.1:10000/acct1"},
		{"http://localhost:10000/", "http://localhost:10000/acct1"},
		{"http://127.0.0.1:10000/devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1"},
		{"https://acct1.privatelink.blob.core.windows.net", "https://acct1.privatelink.blob.core.windows.net"},
	} {
		got, err := serviceURL(c.ep, "acct1")
		if err != nil || got != c.want {
			t.Errorf("serviceURL(%q) = %q, %v; want %q", c.ep, got, err, c.want)
		}
	}
	for _, ep := range []string{"ftp://x", "127.0.0.1:10000", "https://acct1.blob.core.windows.net/?sig=SECRETSIG"} {
		_, err := serviceURL(ep, "acct1")
		if err == nil || strings.Contains(err.Error(), "SECRETSIG") {
			t.Errorf("serviceURL(%q): %v", ep, err)
		}
	}
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestResolveCredentials(t *testing.T) {
	const key = "a2V5a2V5a2V5a2V5a2V5a2V5" // base64
	loc, _ := ParseURL("az://acct1/models/p")
	sasLoc, _ := ParseURL("az://acct1/models/p?sv=1&sig=URLSIG")
	for _, c := range []struct {
		name    string
		loc     Location
		env     map[string]string
		how     string
		svc     string
		wantErr error
	}{
		{"url sas wins", sasLoc, map[string]string{EnvKey: key, EnvSASToken: "sig=ENVSIG"}, "the URL's SAS token", "https://acct1.blob.core.windows.net", nil},
		{"connection string", loc, map[string]string{EnvConnectionString: "DefaultEndpointsProtocol=http;AccountName=acct1;AccountKey=" + key + ";BlobEndpoint=http://127.0.0.1:1/acct1;", EnvKey: "x"},
			EnvConnectionString, "http://127.0.0.1:1/acct1", nil},
		{"connection string endpoint suffix", loc, map[string]string{EnvConnectionString: "AccountName=acct1;AccountKey=" + key + ";EndpointSuffix=core.usgovcloudapi.net"},
			EnvConnectionString, "https://acct1.blob.core.usgovcloudapi.net", nil},
		{"connection string sas", loc, map[string]string{EnvConnectionString: "BlobEndpoint=https://acct1.blob.core.windows.net;SharedAccessSignature=sv=1&sig=CSSIG"},
			EnvConnectionString, "https://acct1.blob.core.windows.net", nil},
		{"dev storage", Location{Account: "devstoreaccount1", Container: "c1c"}, map[string]string{EnvConnectionString: "UseDevelopmentStorage=true"},
			EnvConnectionString, "http://127.0.0.1:10000/devstoreaccount1", nil},
		{"connection string for another account", loc, map[string]string{EnvConnectionString: "AccountName=other;AccountKey=" + key}, "", "", registry.ErrUnauthorized},
		{"connection string garbage", loc, map[string]string{EnvConnectionString: "SECRETGARBAGE"}, "", "", registry.ErrUnauthorized},
		{"sas env", loc, map[string]string{EnvSASToken: "?sv=1&sig=ENVSIG", EnvKey: key}, EnvSASToken, "https://acct1.blob.core.windows.net", nil},
		{"sas env without sig", loc, map[string]string{EnvSASToken: "sv=1"}, "", "", registry.ErrUnauthorized},
		{"key", loc, map[string]string{EnvKey: key, EnvBlobEndpoint: "http://127.0.0.1:9"}, EnvKey, "http://127.0.0.1:9/acct1", nil},
		{"key not base64", loc, map[string]string{EnvKey: "not base64!"}, "", "", registry.ErrUnauthorized},
		{"nothing over http", loc, map[string]string{EnvBlobEndpoint: "http://127.0.0.1:9"}, "", "", registry.ErrUnauthorized},
		{"nothing: azure ad", loc, map[string]string{}, "DefaultAzureCredential", "https://acct1.blob.core.windows.net", nil},
	} {
		svc, cr, err := resolve(c.loc, Options{Getenv: env(c.env)})
		if c.wantErr != nil {
			if !errors.Is(err, c.wantErr) {
				t.Errorf("%s: %v, want %v", c.name, err, c.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRET")) {
				t.Errorf("%s: the error shows a secret: %v", c.name, err)
			}
			continue
		}
		if err != nil || cr.how != c.how || svc != c.svc {
			t.Errorf("%s: %q %q %v; want %q %q", c.name, svc, cr.how, err, c.svc, c.how)
		}
	}
}

func TestScrub(t *testing.T) {
	err := scrub(errors.New(`GET "http://h/c/b?sv=1&sig=ABC%2Bdef": AccountKey=KEYKEY; boom`), []string{"MYSECRETVALUE"})
	if s := err.Error(); strings.Contains(s, "ABC") || strings.Contains(s, "KEYKEY") || !strings.Contains(s, "boom") {
		t.Errorf("scrubbed: %s", s)
	}
	err = scrub(errors.New("x MYSECRETVALUE y"), []string{"MYSECRETVALUE"})
	if err.Error() != "x REDACTED y" {
		t.Errorf("scrubbed: %s", err)
	}
	plain := errors.New("nothing to hide")
	if scrub(plain, []string{"MYSECRETVALUE"}) != plain {
		t.Error("a clean error was wrapped")
	}
}

// With no credentials at all on an https endpoint, DefaultAzureCredential
// is tried; when nothing in its chain works the error is one line that
// lists what to set, and maps to exit 4.
func TestDefaultCredentialUnavailable(t *testing.T) {
	for _, k := range []string{"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_USERNAME", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT", "MSI_ENDPOINT", "AZURE_TOKEN_CREDENTIALS"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	t.Setenv("HOME", t.TempDir())
	t.Setenv("PATH", t.TempDir()) // no az, no azd
	b, _, err := Open("az://acct1/c1c/p", Options{Getenv: env(map[string]string{EnvBlobEndpoint: "https://127.0.0.1:1"})})
	if err != nil {
		t.Fatal(err)
	}
	if b.Credentials() != "DefaultAzureCredential" {
		t.Fatalf("credentials from %s", b.Credentials())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = b.List(ctx, "")
	if err == nil || !errors.Is(err, registry.ErrUnauthorized) || !registry.IsPermanent(err) ||
		strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), EnvKey) {
		t.Errorf("no credentials: %v", err)
	}
}
