// Package testproc runs the real servers the tests talk to (docker-registry,
// Azurite, versitygw) as child processes on loopback: a free port, a log
// file, a wait until the server answers, a few tries when a port is taken
// in between, and a stop by process group at the test's cleanup.
package testproc

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Missing skips the test, or fails it when CI is set (a server the suite
// needs must be installed there).
func Missing(tb testing.TB, msg string) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg + " (CI is set, so this fails rather than skips)")
	}
	tb.Skip(msg)
}

// Spec describes a server to start.
type Spec struct {
	Name string // for messages and the log file
	Dir  string // where the log files go (a test temp dir)
	// Command returns the command line for a server on addr
	// (127.0.0.1:port); try counts the attempts from 0 (for per-try dirs).
	Command func(addr string, port, try int) ([]string, error)
	// Ready reports whether the server on addr answers; nil: it accepts TCP.
	Ready   func(addr string) bool
	Timeout time.Duration // to come up (default 30 s)
}

// Proc is a started server.
type Proc struct {
	Addr string // 127.0.0.1:PORT
	PID  int
}

// Start runs the server for the test's lifetime.
func Start(tb testing.TB, s Spec) Proc {
	tb.Helper()
	if s.Timeout <= 0 {
		s.Timeout = 30 * time.Second
	}
	if s.Ready == nil {
		s.Ready = Listening
	}
	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		argv, err := s.Command(addr, port, try)
		if err != nil {
			tb.Fatal(err)
		}
		logPath := filepath.Join(s.Dir, fmt.Sprintf("%s-%d.log", s.Name, try))
		logf, err := os.Create(logPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// Its own process group, so that stopping it also stops any child
		// a wrapper script started (Azurite's npm launcher).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatalf("start %s: %v", s.Name, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(done) }()
		pid := cmd.Process.Pid
		stop := func() {
			syscall.Kill(-pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				syscall.Kill(-pid, syscall.SIGKILL)
				<-done
			}
		}
		if up(addr, s, done) {
			tb.Cleanup(stop)
			return Proc{Addr: addr, PID: pid}
		}
		stop()
		log, _ := os.ReadFile(logPath)
		lastErr = fmt.Errorf("%s did not come up on %s: %s", s.Name, addr, strings.TrimSpace(string(log)))
	}
	tb.Fatal(lastErr)
	return Proc{}
}

func up(addr string, s Spec, done <-chan struct{}) bool {
	deadline := time.Now().Add(s.Timeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return false
		default:
		}
		if s.Ready(addr) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// FreePort returns a loopback port nobody listens on (at the moment).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Listening reports whether addr accepts TCP connections.
func Listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// Answers returns a Ready check: a GET of path answers HTTP (with status
// want, or any status when want is 0).
func Answers(path string, want int) func(addr string) bool {
	return func(addr string) bool {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return want == 0 || resp.StatusCode == want
	}
}

// NPMDir returns the absolute npm prefix holding the package pkg:
// $GPTOSS_NPM_DIR, else .tools/npm at the repository root (where .ci/run
// installs the npm tools). Without node or the package the test is skipped
// (failed when CI is set).
func NPMDir(tb testing.TB, pkg string) string {
	tb.Helper()
	dir := os.Getenv("GPTOSS_NPM_DIR")
	if dir == "" {
		root, err := RepoRoot()
		if err != nil {
			tb.Fatal(err)
		}
		dir = filepath.Join(root, ".tools", "npm")
	}
	if _, err := exec.LookPath("node"); err != nil {
		Missing(tb, "node is not installed")
	} else if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
		Missing(tb, pkg+" is not installed in "+dir+" (npm install --prefix "+dir+" "+pkg+", or set GPTOSS_NPM_DIR)")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return abs
}

// RepoRoot is the directory holding go.mod above the working directory.
func RepoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		d = p
	}
}
