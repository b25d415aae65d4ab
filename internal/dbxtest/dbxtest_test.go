package dbxtest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	rw = "dapi-rw-secret"
	ro = "dapi-ro-secret"
)

type client struct {
	t     *testing.T
	s     *Server
	token string
}

func (c client) do(method, p string, body []byte, hdr ...string) (*http.Response, []byte) {
	c.t.Helper()
	u := p
	if !strings.HasPrefix(p, "http") {
		u = c.s.URL + p
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, p, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil && method != http.MethodHead {
		c.t.Logf("%s %s: reading body: %v", method, p, err)
	}
	return resp, b
}

func (c client) want(status int, method, p string, body []byte, hdr ...string) []byte {
	c.t.Helper()
	resp, b := c.do(method, p, body, hdr...)
	if resp.StatusCode != status {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, p, resp.StatusCode, status, b)
	}
	return b
}

func errCode(t *testing.T, b []byte) string {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(b, &e); err != nil || e.ErrorCode == "" || e.Message == "" {
		t.Fatalf("not a Databricks error body: %q", b)
	}
	return e.ErrorCode
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestFilesAndListing(t *testing.T) {
	s := Start(t, Options{Tokens: []string{rw}, ReadOnlyTokens: []string{ro}, PageSize: 2})
	vol := s.AddVolume("main", "models", "gptoss")
	c := client{t, s, rw}
	data := randBytes(100_000)
	base := "/api/2.0/fs/files/Volumes/main/models/gptoss"
	c.want(204, "PUT", base+"/m/sub/a.bin?overwrite=true", data)
	got, _ := os.ReadFile(filepath.Join(vol, "m", "sub", "a.bin"))
	if !bytes.Equal(got, data) {
		t.Fatal("PUT did not store the bytes")
	}
	// overwrite=false (and the default) refuse to replace a file.
	b := c.want(409, "PUT", base+"/m/sub/a.bin", []byte("x"))
	if errCode(t, b) != "ALREADY_EXISTS" {
		t.Errorf("code %s", b)
	}
	for _, n := range []string{"b.json", "c.txt", "d.txt", "e.txt"} {
		c.want(204, "PUT", base+"/m/"+n+"?overwrite=true", []byte(n))
	}
	c.want(204, "PUT", base+"/m/empty?overwrite=true", []byte{})

	// GET whole, ranges, HEAD.
	if b := c.want(200, "GET", base+"/m/sub/a.bin", nil); !bytes.Equal(b, data) {
		t.Error("GET differs")
	}
	for _, tc := range []struct {
		rng      string
		off, n   int
		crHeader string
	}{
		{"bytes=0-9", 0, 10, "bytes 0-9/100000"},
		{"bytes=500-", 500, 99_500, "bytes 500-99999/100000"},
		{"bytes=-7", 99_993, 7, "bytes 99993-99999/100000"},
		{"bytes=99990-200000", 99_990, 10, "bytes 99990-99999/100000"},
	} {
		resp, b := c.do("GET", base+"/m/sub/a.bin", nil, "Range", tc.rng)
		if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != tc.crHeader || !bytes.Equal(b, data[tc.off:tc.off+tc.n]) {
			t.Errorf("%s: %d %q, %d bytes", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(b))
		}
	}
	resp, _ := c.do("GET", base+"/m/sub/a.bin", nil, "Range", "bytes=100000-")
	if resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */100000" {
		t.Errorf("unsatisfiable: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	resp, _ = c.do("HEAD", base+"/m/sub/a.bin", nil)
	if resp.StatusCode != 200 || resp.ContentLength != 100_000 || resp.Header.Get("Last-Modified") == "" {
		t.Errorf("HEAD: %d %d", resp.StatusCode, resp.ContentLength)
	}
	if b := c.want(200, "GET", base+"/m/empty", nil); len(b) != 0 {
		t.Error("empty file has bytes")
	}

	// Listing, two entries a page: every page but the last has a token.
	var names []string
	tok, pages := "", 0
	for {
		u := "/api/2.0/fs/directories/Volumes/main/models/gptoss/m/"
		if tok != "" {
			u += "?page_token=" + tok
		}
		var lr listResponse
		if err := json.Unmarshal(c.want(200, "GET", u, nil), &lr); err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range lr.Contents {
			names = append(names, e.Name)
			switch {
			case e.Name == "sub" && (!e.IsDirectory || e.Path != "/Volumes/main/models/gptoss/m/sub/"):
				t.Errorf("dir entry %+v", e)
			case e.Name == "b.json" && (e.IsDirectory || e.FileSize != 6 || e.LastModified == 0 || e.Path != "/Volumes/main/models/gptoss/m/b.json"):
				t.Errorf("file entry %+v", e)
			}
		}
		if tok = lr.NextPageToken; tok == "" {
			break
		}
	}
	if strings.Join(names, ",") != "b.json,c.txt,d.txt,e.txt,empty,sub" || pages != 3 {
		t.Errorf("listing %v in %d pages", names, pages)
	}
	// A token is bound to its directory.
	var lr listResponse
	json.Unmarshal(c.want(200, "GET", "/api/2.0/fs/directories/Volumes/main/models/gptoss/m", nil), &lr)
	b = c.want(400, "GET", "/api/2.0/fs/directories/Volumes/main/models/gptoss?page_token="+lr.NextPageToken, nil)
	errCode(t, b)

	// Directories: HEAD, mkdir -p, delete only when empty.
	c.want(200, "HEAD", "/api/2.0/fs/directories/Volumes/main/models/gptoss/m", nil)
	c.want(404, "HEAD", "/api/2.0/fs/directories/Volumes/main/models/gptoss/nope", nil)
	c.want(204, "PUT", "/api/2.0/fs/directories/Volumes/main/models/gptoss/x/y/z", nil)
	c.want(204, "PUT", "/api/2.0/fs/directories/Volumes/main/models/gptoss/x/y/z", nil)
	c.want(400, "DELETE", "/api/2.0/fs/directories/Volumes/main/models/gptoss/x/y", nil)
	c.want(204, "DELETE", "/api/2.0/fs/directories/Volumes/main/models/gptoss/x/y/z", nil)
	c.want(204, "DELETE", base+"/m/e.txt", nil)
	c.want(404, "GET", base+"/m/e.txt", nil)

	st := s.Stats()
	if st.Requests[EndpointList] != 5 || st.PutBytes["/Volumes/main/models/gptoss/m/sub/a.bin"] != 100_000 ||
		st.FileRequests["/Volumes/main/models/gptoss/m/sub/a.bin"] != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestErrorsAndAccess(t *testing.T) {
	s := Start(t, Options{Tokens: []string{rw}, ReadOnlyTokens: []string{ro}})
	vol := s.AddVolume("c", "s", "v")
	os.WriteFile(filepath.Join(vol, "f"), []byte("hello"), 0o644)
	f := "/api/2.0/fs/files/Volumes/c/s/v/f"
	cases := []struct {
		token, method, path string
		status              int
		code                string
	}{
		{"", "GET", f, 401, "UNAUTHENTICATED"},
		{"wrong", "GET", f, 403, "PERMISSION_DENIED"},
		{ro, "PUT", f + "?overwrite=true", 403, "PERMISSION_DENIED"},
		{ro, "PUT", "/api/2.0/fs/directories/Volumes/c/s/v/d", 403, "PERMISSION_DENIED"},
		{ro, "POST", f + "?action=initiate-upload", 403, "PERMISSION_DENIED"},
		{rw, "GET", "/api/2.0/fs/files/Volumes/c/s/nope/f", 404, "NOT_FOUND"},
		{rw, "GET", "/api/2.0/fs/files/Volumes/c/s/v/missing", 404, "NOT_FOUND"},
		{rw, "GET", "/api/2.0/fs/directories/Volumes/c/s/v/f", 404, "NOT_FOUND"},
		{rw, "GET", "/api/2.0/fs/files/tmp/x", 400, "INVALID_PARAMETER_VALUE"},
		{rw, "GET", "/api/2.0/fs/files/Volumes/c/s/v/../../x", 400, "INVALID_PARAMETER_VALUE"},
		{rw, "GET", "/api/2.0/fs/files/Volumes/c/s/v/%2E%2E/x", 400, "INVALID_PARAMETER_VALUE"},
		{rw, "GET", "/api/2.0/fs/unknown", 404, "ENDPOINT_NOT_FOUND"},
	}
	for _, tc := range cases {
		c := client{t, s, tc.token}
		resp, b := c.do(tc.method, tc.path, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s (token %q): %d, want %d: %s", tc.method, tc.path, tc.token, resp.StatusCode, tc.status, b)
			continue
		}
		if code := errCode(t, b); code != tc.code {
			t.Errorf("%s %s: code %s, want %s", tc.method, tc.path, code, tc.code)
		}
		if strings.Contains(string(b), rw) || strings.Contains(string(b), ro) {
			t.Errorf("a token in an error body: %s", b)
		}
	}
	// The read-only token reads.
	if b := (client{t, s, ro}).want(200, "GET", f, nil); string(b) != "hello" {
		t.Errorf("read-only GET: %q", b)
	}
}

func TestFaults(t *testing.T) {
	s := Start(t, Options{})
	vol := s.AddVolume("c", "s", "v")
	data := randBytes(1 << 20)
	os.WriteFile(filepath.Join(vol, "w.safetensors"), data, 0o644)
	c := client{t, s, "any"}
	f := "/api/2.0/fs/files/Volumes/c/s/v/w.safetensors"

	s.SetFaults(Fault{Kind: Fault503, Count: 2, RetryAfter: 3, Endpoints: []Endpoint{EndpointGet}})
	for i := 0; i < 2; i++ {
		resp, b := c.do("GET", f, nil)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || errCode(t, b) != "TEMPORARILY_UNAVAILABLE" {
			t.Fatalf("503 fault: %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	c.want(200, "GET", f, nil) // the count is spent

	for _, k := range []FaultKind{FaultTruncate, FaultDrop} {
		s.SetFaults(Fault{Kind: k, Count: 1, AfterBytes: 1000, Path: "*.safetensors"})
		req, _ := http.NewRequest("GET", s.URL+f, nil)
		req.Header.Set("Authorization", "Bearer any")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(b) != 1000 || resp.ContentLength != 1<<20 || !bytes.Equal(b, data[:1000]) {
			t.Errorf("%s: %d bytes, err %v", k, len(b), err)
		}
		if k == FaultDrop && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("drop: %v", err)
		}
	}
	s.SetFaults(Fault{Kind: FaultCorrupt, Count: 1, AfterBytes: 12345})
	b := c.want(200, "GET", f, nil)
	if len(b) != len(data) || b[12345] != data[12345]^0xFF || !bytes.Equal(b[:12345], data[:12345]) {
		t.Error("corrupt fault did not flip exactly one byte")
	}
	if b := c.want(200, "GET", f, nil); !bytes.Equal(b, data) {
		t.Error("faults outlived their count")
	}
	st := s.Stats()
	if st.Faults[Fault503] != 2 || st.Faults[FaultTruncate] != 1 || st.Faults[FaultDrop] != 1 || st.Faults[FaultCorrupt] != 1 {
		t.Errorf("fault stats %v", st.Faults)
	}
}

func TestMultipartUpload(t *testing.T) {
	s := Start(t, Options{MinPart: 1000, MaxPut: 5000})
	s.AddVolume("c", "s", "v")
	c := client{t, s, "tok"}
	data := randBytes(2500)
	file := "/api/2.0/fs/files/Volumes/c/s/v/big/model.bin"
	// Single-shot over MaxPut is refused.
	c.want(413, "PUT", file+"?overwrite=true", randBytes(5001))

	var init struct {
		MultipartUpload struct {
			SessionToken string `json:"session_token"`
		} `json:"multipart_upload"`
	}
	json.Unmarshal(c.want(200, "POST", file+"?action=initiate-upload&overwrite=true", nil), &init)
	tok := init.MultipartUpload.SessionToken
	if tok == "" {
		t.Fatal("no session token")
	}
	body, _ := json.Marshal(map[string]any{"path": "/Volumes/c/s/v/big/model.bin", "session_token": tok,
		"start_part_number": 1, "count": 3, "expire_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	var urls struct {
		UploadPartURLs []partURL `json:"upload_part_urls"`
	}
	json.Unmarshal(c.want(200, "POST", "/api/2.0/fs/create-upload-part-urls", body), &urls)
	if len(urls.UploadPartURLs) != 3 || !strings.HasPrefix(urls.UploadPartURLs[0].URL, s.StorageURL) {
		t.Fatalf("part urls %+v", urls)
	}
	// The storage host refuses the workspace token, and forged signatures.
	resp, _ := c.do("PUT", urls.UploadPartURLs[0].URL, data[:1000])
	if resp.StatusCode != 400 {
		t.Errorf("part PUT with Authorization: %d", resp.StatusCode)
	}
	anon := client{t, s, ""}
	resp, _ = anon.do("PUT", strings.Replace(urls.UploadPartURLs[0].URL, "X-Signature=", "X-Signature=0", 1), data[:1000])
	if resp.StatusCode != 403 {
		t.Errorf("forged signature: %d", resp.StatusCode)
	}
	var parts []map[string]any
	for i, u := range urls.UploadPartURLs {
		chunk := data[i*1000 : min((i+1)*1000, len(data))]
		resp, _ := anon.do("PUT", u.URL, chunk, "Content-Type", "application/octet-stream")
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Fatalf("part %d: %d", i+1, resp.StatusCode)
		}
		parts = append(parts, map[string]any{"part_number": u.PartNumber, "etag": resp.Header.Get("ETag")})
	}
	// Not visible before completion.
	c.want(404, "HEAD", file, nil)
	bad, _ := json.Marshal(map[string]any{"parts": []map[string]any{{"part_number": 1, "etag": "\"x\""}}})
	c.want(400, "POST", file+"?action=complete-upload&session_token="+tok, bad)
	done, _ := json.Marshal(map[string]any{"parts": parts})
	c.want(200, "POST", file+"?action=complete-upload&session_token="+tok, done)
	if b := c.want(200, "GET", file, nil); !bytes.Equal(b, data) {
		t.Error("assembled file differs")
	}

	// A part below the minimum (not the last) fails completion; abort drops the session.
	json.Unmarshal(c.want(200, "POST", file+"?action=initiate-upload&overwrite=true", nil), &init)
	tok = init.MultipartUpload.SessionToken
	body, _ = json.Marshal(map[string]any{"path": "/Volumes/c/s/v/big/model.bin", "session_token": tok,
		"start_part_number": 1, "count": 2, "expire_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	json.Unmarshal(c.want(200, "POST", "/api/2.0/fs/create-upload-part-urls", body), &urls)
	parts = nil
	for i, u := range urls.UploadPartURLs {
		resp, _ := anon.do("PUT", u.URL, data[:10])
		parts = append(parts, map[string]any{"part_number": i + 1, "etag": resp.Header.Get("ETag")})
	}
	done, _ = json.Marshal(map[string]any{"parts": parts})
	c.want(400, "POST", file+"?action=complete-upload&session_token="+tok, done)
	ab, _ := json.Marshal(map[string]any{"path": "/Volumes/c/s/v/big/model.bin", "session_token": tok,
		"expire_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	var au struct {
		AbortUploadURL partURL `json:"abort_upload_url"`
	}
	json.Unmarshal(c.want(200, "POST", "/api/2.0/fs/create-abort-upload-url", ab), &au)
	anon.want(204, "DELETE", au.AbortUploadURL.URL, nil)
	c.want(404, "POST", file+"?action=complete-upload&session_token="+tok, done)
	if b := c.want(200, "GET", file, nil); !bytes.Equal(b, data) {
		t.Error("an aborted upload replaced the file")
	}

	// Expired URLs.
	body, _ = json.Marshal(map[string]any{"path": "/Volumes/c/s/v/big/model.bin", "session_token": "nope",
		"start_part_number": 1, "count": 1, "expire_time": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	c.want(404, "POST", "/api/2.0/fs/create-upload-part-urls", body)
	var names []string
	ents, _ := os.ReadDir(filepath.Join(s.Dir, ".uploads"))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) != 0 {
		t.Errorf("sessions left on disk: %v", names)
	}
	_ = fmt.Sprint
}

func TestDenyRead(t *testing.T) {
	s := Start(t, Options{})
	vol := s.AddVolume("c", "s", "secret")
	os.WriteFile(filepath.Join(vol, "f"), []byte("x"), 0o644)
	c := client{t, s, "tok"}
	c.want(200, "GET", "/api/2.0/fs/files/Volumes/c/s/secret/f", nil)
	s.DenyRead("c", "s", "secret")
	for _, p := range []string{"/api/2.0/fs/files/Volumes/c/s/secret/f", "/api/2.0/fs/directories/Volumes/c/s/secret"} {
		if code := errCode(t, c.want(403, "GET", p, nil)); code != "PERMISSION_DENIED" {
			t.Errorf("%s: %s", p, code)
		}
	}
}

func TestRate(t *testing.T) {
	s := Start(t, Options{Rate: 1 << 20})
	vol := s.AddVolume("c", "s", "v")
	data := randBytes(300 << 10)
	os.WriteFile(filepath.Join(vol, "f"), data, 0o644)
	c := client{t, s, "tok"}
	if b := c.want(200, "GET", "/api/2.0/fs/files/Volumes/c/s/v/f", nil); !bytes.Equal(b, data) {
		t.Error("a paced body differs")
	}
	s.SetRate(0)
	if b := c.want(206, "GET", "/api/2.0/fs/files/Volumes/c/s/v/f", nil, "Range", "bytes=10-19"); !bytes.Equal(b, data[10:20]) {
		t.Error("range after SetRate(0) differs")
	}
}
