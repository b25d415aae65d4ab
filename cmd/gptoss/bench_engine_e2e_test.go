package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func runBenchEngine(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	c := exec.Command(gptossBin, append([]string{"bench-engine"}, args...)...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func TestBenchEngineSyntheticTiny(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--synthetic", "tiny", "--engine", "cpu", "--json", "--prompt", "40", "--decode", "8", "--context", "0,70", "--dir", dir}
	var reps [2]benchEngineReport
	for i := range reps {
		code, stdout, stderr := runBenchEngine(t, args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		dec := json.NewDecoder(strings.NewReader(stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&reps[i]); err != nil {
			t.Fatalf("%v in %q", err, stdout)
		}
	}
	r := reps[0]
	if r.Engine != "cpu" || r.Synthetic != "tiny" || r.Config.NumHiddenLayers != 4 || r.Config.VocabSize != 1024 {
		t.Fatalf("report %+v", r)
	}
	fi, err := os.Stat(r.Layout)
	if err != nil || filepath.Dir(r.Layout) != dir || fi.Size() != r.LayoutBytes {
		t.Fatalf("layout %s (%d bytes): %v", r.Layout, r.LayoutBytes, err)
	}
	if r.Reused || !reps[1].Reused || reps[1].WriteSeconds != 0 || r.WriteSeconds <= 0 {
		t.Fatalf("first run reused=%v (write %gs), second reused=%v (write %gs)", r.Reused, r.WriteSeconds, reps[1].Reused, reps[1].WriteSeconds)
	}
	if r.LoadSeconds <= 0 || r.PrefillTokens != 40 || r.PrefillSeconds <= 0 || r.PrefillTokS <= 0 || r.PrefillFirstSeconds <= 0 {
		t.Fatalf("load/prefill: %+v", r)
	}
	if len(r.Decode) != 2 || r.Decode[0].Context != 0 || r.Decode[1].Context != 70 {
		t.Fatalf("decode %+v", r.Decode)
	}
	for _, d := range r.Decode {
		if d.Tokens != 8 || d.Seconds <= 0 || d.TokS <= 0 {
			t.Fatalf("decode %+v", d)
		}
	}
	if r.PeakRSSBytes <= 0 || r.PeakDeviceBytes != 0 || r.PrefillCPUSeconds < 0 || r.Decode[0].CPUSeconds < 0 {
		t.Fatalf("peak RSS %d, device %d", r.PeakRSSBytes, r.PeakDeviceBytes)
	}

	// The text report.
	code, stdout, stderr := runBenchEngine(t, "--synthetic", "tiny", "--engine", "cpu", "--prompt", "8", "--decode", "2", "--context", "0", "--dir", dir, "--layers", "2", "--vocab", "300")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"engine cpu, synthetic tiny: 2 layers", "vocab 300", "prefill ", "decode ", "at context 0", "peak RSS"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "writing a synthetic tiny layout") {
		t.Errorf("no progress on stderr: %q", stderr)
	}

	// --decode-weights q8: the engine says it decodes with the Q8 copies
	code, stdout, stderr = runBenchEngine(t, append(args[:len(args):len(args)], "--decode-weights", "q8")...)
	var q benchEngineReport
	if code != 0 || json.Unmarshal([]byte(stdout), &q) != nil || q.Kernels != "decode q8" || len(q.Decode) != 2 || q.Decode[0].TokS <= 0 {
		t.Fatalf("--decode-weights q8: exit %d, kernels %q, decode %+v: %s", code, q.Kernels, q.Decode, stderr)
	}
}

func TestBenchEngineUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--synthetic", "7b"}, `no preset "7b"`},
		{[]string{"--engine", "cpu"}, "--synthetic"},
		{[]string{"--synthetic", "tiny", "--context", "0,x"}, "--context"},
		{[]string{"--synthetic", "tiny", "--decode", "0"}, "--decode"},
		{[]string{"--synthetic", "tiny", "--engine", "nosuch"}, `--engine "nosuch"`},
		{[]string{"--synthetic", "tiny", "--decode-weights", "fp8"}, `--decode-weights "fp8"`},
	} {
		code, _, stderr := runBenchEngine(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want exit 2 mentioning %q", c.args, code, stderr, c.want)
		}
	}
}
