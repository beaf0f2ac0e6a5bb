package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/testservers"
)

// TestMain lets the test binary stand in for the bench binary: the bench
// re-executes itself (os.Executable) with the copy-airlock subcommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == copyAirlockCmd {
		os.Exit(runCopyAirlock(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestBenchAirlockFromS3 runs the whole bench on a small object with
// Airlock alone against a real versitygw: the child copies through
// PlanImport and ExtractObject, and the report holds what it measured.
func TestBenchAirlockFromS3(t *testing.T) {
	if _, err := testservers.Tool(testservers.VersityGWTool); err != nil {
		testservers.Unavailable(t, err)
	}
	c, err := parseFlags([]string{"-size", "20MiB", "-part-size", "5MiB", "-runs", "2", "-sources", "s3", "-tools", "airlock",
		"-dir", t.TempDir(), "-o", filepath.Join(t.TempDir(), "out", "bench.json")})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || len(rep.Results[0].Runs) != 2 {
		t.Fatalf("results = %+v; want Airlock's two runs from s3", rep.Results)
	}
	r := rep.Results[0]
	for _, run := range r.Runs {
		if run.MBps <= 0 || run.PeakRSSBytes < 1<<20 || run.ActivitySeconds <= 0 || run.ActivitySeconds > run.Seconds {
			t.Errorf("run %+v: want a positive rate, a peak RSS and ExtractObject's time within the run's", run)
		}
	}
	if r.Tool != toolAirlock || r.Source != model.ConnS3 || !strings.Contains(r.Command, copyAirlockCmd+" -connection") || !strings.Contains(r.Command, "-part-size 5242880") {
		t.Errorf("result %+v: want Airlock from s3, run as copy-airlock with the part size asked for", r)
	}
	if strings.Contains(r.Command, "SECRET") || len(rep.Verdicts) != 0 {
		t.Errorf("command %q carries a secret, or verdicts %+v without a reference tool", r.Command, rep.Verdicts)
	}
	data, err := os.ReadFile(c.out)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(data, &back); err != nil || back.ObjectSHA256 != rep.ObjectSHA256 || len(back.Results) != 1 {
		t.Errorf("the JSON report does not hold the results (%v): %s", err, data)
	}
	if entries, _ := os.ReadDir(c.dir); len(entries) != 0 {
		t.Errorf("the bench left %d entries in -dir; want its temporary folder removed", len(entries))
	}
}

// TestWrongBytesFailTheRun makes sure a run whose copy does not hold the
// object's bytes fails instead of being timed.
func TestWrongBytesFailTheRun(t *testing.T) {
	if _, err := testservers.Tool(testservers.VersityGWTool); err != nil {
		testservers.Unavailable(t, err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	obj := filepath.Join(dir, "object")
	size := int64(3 << 20)
	sum, err := makeRandomFile(obj, size)
	if err != nil {
		t.Fatal(err)
	}
	src, err := startS3(ctx, obj, size)
	if err != nil {
		t.Fatal(err)
	}
	defer src.stop()
	c := config{tools: []string{toolAirlock}}
	rep := Report{Tools: map[string]string{}}
	tools, err := c.contenders(dir, &rep)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target")
	if _, err := runOnce(ctx, tools[0], src, target, 1, size, sum); err != nil {
		t.Fatalf("the right digest: %v", err)
	}
	wrong := strings.Repeat("0", 64)
	if _, err := runOnce(ctx, tools[0], src, target, 2, size, wrong); err == nil || !strings.Contains(err.Error(), wrong) {
		t.Errorf("a copy whose digest is not the object's passed (err %v)", err)
	}
	if _, err := runOnce(ctx, tools[0], src, target, 3, size+1, sum); err == nil {
		t.Error("a copy of the wrong size passed")
	}
}
