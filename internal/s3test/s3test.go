// Package s3test starts a real S3-compatible server for tests: versitygw
// (v1.8.0, Apache-2.0) on a free loopback port, serving a temporary
// directory (buckets are folders, objects are files) with SigV4 and an
// internal IAM, so tests can also use a second user that has no access to
// the admin's buckets.
//
// The binary is looked up as $VERSITYGW, then versitygw on PATH, then
// $(go env GOPATH)/bin/versitygw. Without it a test is skipped, or, when
// CI is set, fails: .ci/run installs it
// (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0).
package s3test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/gptoss/gptoss/internal/testproc"
)

// Credentials of the server's admin (owner of every bucket made with
// MakeBucket) and of a user with no access to those buckets.
const (
	Access       = "gptoss-admin"
	Secret       = "gptoss-admin-secret"
	OtherAccess  = "gptoss-other"
	OtherSecret  = "gptoss-other-secret"
	Region       = "us-east-1"
	installHint  = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
	startTimeout = 20 * time.Second
)

// Server is a running versitygw.
type Server struct {
	Endpoint string // http://127.0.0.1:PORT
	Dir      string // the posix backend root: Dir/<bucket>/<key>
	Bin      string // the versitygw binary
}

// Binary returns the versitygw binary, or "" if none is installed.
func Binary() string {
	if b := os.Getenv("VERSITYGW"); b != "" {
		return b
	}
	if b, err := exec.LookPath("versitygw"); err == nil {
		return b
	}
	gp := os.Getenv("GOPATH")
	if gp == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gp = strings.TrimSpace(string(out))
		}
	}
	if gp != "" {
		b := filepath.Join(gp, "bin", "versitygw")
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	return ""
}

// Start runs a server for the test and stops it (by its PID) at cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := Binary()
	if bin == "" {
		testproc.Missing(tb, "versitygw is not installed: "+installHint)
	}
	root := tb.TempDir()
	s := &Server{Dir: filepath.Join(root, "data"), Bin: bin}
	iam := filepath.Join(root, "iam")
	for _, d := range []string{s.Dir, iam} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	p := testproc.Start(tb, testproc.Spec{
		Name: "versitygw", Dir: root, Timeout: startTimeout,
		Command: func(addr string, _, _ int) ([]string, error) {
			return []string{bin, "--access", Access, "--secret", Secret, "--port", addr,
				"--iam-dir", iam, "--quiet", "posix", s.Dir}, nil
		},
	})
	s.Endpoint = "http://" + p.Addr
	s.admin(tb, "create-user", "--access", OtherAccess, "--secret", OtherSecret, "--role", "user")
	return s
}

func (s *Server) admin(tb testing.TB, args ...string) {
	tb.Helper()
	a := append([]string{"admin", "--access", Access, "--secret", Secret, "--endpoint-url", s.Endpoint}, args...)
	if out, err := exec.Command(s.Bin, a...).CombinedOutput(); err != nil {
		tb.Fatalf("versitygw admin %s: %v: %s", args[0], err, out)
	}
}

// MakeBucket creates a bucket owned by the admin (a folder of Dir).
func (s *Server) MakeBucket(tb testing.TB, name string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Join(s.Dir, name), 0o755); err != nil {
		tb.Fatal(err)
	}
}

// Path is the file holding an object, for tests that damage objects
// behind the server's back.
func (s *Server) Path(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

// Env is the environment for a client acting as the admin: credentials,
// region and endpoint; shared AWS config files and the EC2 metadata
// service are switched off so nothing of the machine's own AWS setup
// leaks in.
func (s *Server) Env() []string { return s.EnvAs(Access, Secret) }

// EnvAs is Env with other credentials ("" for none at all).
func (s *Server) EnvAs(access, secret string) []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + s.Endpoint,
		"AWS_REGION=" + Region,
		"AWS_DEFAULT_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
	if access != "" {
		env = append(env, "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	}
	return env
}

// Setenv applies Env to the test process (t.Setenv, so not in parallel
// tests).
func (s *Server) Setenv(t *testing.T, env []string) {
	t.Helper()
	for _, kv := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"} {
		t.Setenv(kv, "")
		os.Unsetenv(kv)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// MakePublicBucket creates a bucket anyone may list and read without
// credentials (a bucket policy with Principal "*"), like a public dataset
// bucket on AWS.
func (s *Server) MakePublicBucket(tb testing.TB, name string) {
	tb.Helper()
	s.MakeBucket(tb, name)
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",`+
		`"Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}`, name, name)
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true, Region: Region,
		Credentials: credentials.NewStaticCredentialsProvider(Access, Secret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(name), Policy: aws.String(policy)}); err != nil {
		tb.Fatalf("public bucket %s: %v", name, err)
	}
}

// PendingUploads counts the bucket's unfinished multipart uploads (what a
// failed upload must not leave behind).
func (s *Server) PendingUploads(tb testing.TB, bucket string) int {
	tb.Helper()
	c := s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true, Region: Region,
		Credentials: credentials.NewStaticCredentialsProvider(Access, Secret, ""),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		tb.Fatalf("list multipart uploads of %s: %v", bucket, err)
	}
	return len(out.Uploads)
}
