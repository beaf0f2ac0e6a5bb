package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1GiB": 1 << 30, "1gib": 1 << 30, "512MiB": 512 << 20, "64KiB": 64 << 10,
		"100MB": 100e6, "2GB": 2e9, "1048576": 1 << 20, "16M": 16 << 20, " 3 MiB ": 3 << 20, "0": 0, "7B": 7,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "1.5GiB", "-1MiB", "12XB", "99999999999999GiB"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d; want an error", in, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1GiB", 16 << 20: "16MiB", 1536 << 10: "1536KiB", 1000: "1000B", 0: "0B"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v; want %v", c.in, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	results := []Result{
		{Tool: "airlock", Source: "s3", Runs: []Run{
			{MBps: 300, DurableMBps: 300, PeakRSSBytes: 90 << 20, UserCPU: 2, SysCPU: 1},
			{MBps: 200, DurableMBps: 200, PeakRSSBytes: 95 << 20, UserCPU: 1, SysCPU: 1},
			{MBps: 250, DurableMBps: 250, PeakRSSBytes: 80 << 20, UserCPU: 1, SysCPU: 0.5},
		}},
		{Tool: "rclone", Source: "s3", Reference: true, Runs: []Run{{MBps: 400, DurableMBps: 250}, {MBps: 380, DurableMBps: 240}}},
		{Tool: "aws", Source: "s3", Reference: true, Runs: []Run{{MBps: 350, DurableMBps: 280}}},
		{Tool: "airlock", Source: "azureblob", Runs: []Run{{MBps: 500, DurableMBps: 500, PeakRSSBytes: 120 << 20}}},
		{Tool: "rclone", Source: "azureblob", Reference: true, Runs: []Run{{MBps: 400, DurableMBps: 300}}},
	}
	verdicts := summarize(results)

	a := results[0]
	if a.BestMBps != 300 || a.MedianMBps != 250 || a.PeakRSSMiB != 95 || a.CPUSeconds != 2 {
		t.Errorf("airlock s3 = best %v median %v peak %v MiB cpu %v; want 300, 250, 95, 2", a.BestMBps, a.MedianMBps, a.PeakRSSMiB, a.CPUSeconds)
	}
	// The fastest reference is rclone (400) by exit time, aws (280) once on disk.
	if a.Ratio != 0.75 || a.DurableRatio != 300.0/280 {
		t.Errorf("airlock s3 ratio %v, durable %v; want 0.75 (vs rclone), %v (vs aws)", a.Ratio, a.DurableRatio, 300.0/280)
	}
	if results[1].Ratio != 1 || results[2].Ratio != 350.0/400 {
		t.Errorf("reference ratios %v, %v; want 1 and 0.875", results[1].Ratio, results[2].Ratio)
	}
	if len(verdicts) != 2 {
		t.Fatalf("verdicts = %+v; want one per source Airlock ran on", verdicts)
	}
	s3, az := verdicts[0], verdicts[1]
	if s3.Source != "s3" || s3.BestReference != "rclone" || s3.BestDurableReference != "aws" || s3.FastEnough || !s3.SmallEnough {
		t.Errorf("s3 verdict %+v; want too slow against rclone, small enough", s3)
	}
	if az.Source != "azureblob" || az.Ratio != 1.25 || !az.FastEnough || az.SmallEnough {
		t.Errorf("azureblob verdict %+v; want fast enough (1.25×), too big (120 MiB)", az)
	}
	if line := s3.Line(); !strings.Contains(line, "0.75× rclone") || !strings.Contains(line, "MISSED") {
		t.Errorf("verdict line %q does not say Airlock missed the target against rclone", line)
	}
}

func TestSummarizeWithoutReference(t *testing.T) {
	results := []Result{{Tool: "airlock", Source: "s3", Runs: []Run{{MBps: 300}}}}
	if v := summarize(results); len(v) != 0 || results[0].Ratio != 0 {
		t.Errorf("with no reference tool: verdicts %+v, ratio %v; want none and 0", v, results[0].Ratio)
	}
}

func TestWriteTable(t *testing.T) {
	results := []Result{
		{Tool: "airlock", Source: "azureblob", Runs: []Run{{MBps: 312.34, DurableMBps: 312.3, PeakRSSBytes: 99 << 20}}},
		{Tool: "rclone", Source: "azureblob", Reference: true, Runs: []Run{{MBps: 1000, DurableMBps: 900}}},
	}
	summarize(results)
	var b bytes.Buffer
	writeTable(&b, results)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table has %d lines; want a header, a rule and 2 rows:\n%s", len(lines), b.String())
	}
	for _, l := range lines {
		if len(l) != len(lines[0]) {
			t.Errorf("rows are not aligned:\n%s", b.String())
			break
		}
	}
	for _, want := range []string{"| tool ", "ratio vs best reference", "| airlock | azureblob |", "312.3", "99.0", "0.31", "0.35", "---:"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.size != 1<<30 || c.runs != 3 || c.airlock != (airlockSettings{}) || len(c.sources) != 2 || len(c.tools) != 3 ||
		c.rcloneStreams != 4 || c.awsConcurrency != 10 || c.awsChunk != 8<<20 || c.aws != "/usr/bin/aws" {
		t.Errorf("defaults = %+v; want 1GiB, 3 runs, the connectors' and tools' defaults, both sources, all tools", c)
	}
	c, err = parseFlags([]string{"-size", "64MiB", "-part-size", "8MiB", "-concurrency", "6", "-sources", "s3", "-tools", "airlock, rclone"})
	if err != nil {
		t.Fatal(err)
	}
	if c.size != 64<<20 || c.airlock.PartSize != 8<<20 || c.airlock.Concurrency != 6 || strings.Join(c.sources, ",") != "s3" || strings.Join(c.tools, ",") != "airlock,rclone" {
		t.Errorf("parsed %+v", c)
	}
	for _, args := range [][]string{
		{"-sources", "gcs"}, {"-tools", "azcopy"}, {"-sources", ""}, {"-size", "0"}, {"-runs", "0"}, {"-aws-chunk", "1MiB"}, {"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%q) accepted bad input", args)
		}
	}
}
