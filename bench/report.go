package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets the issue sets for Airlock on a 1 GiB object: at least the
// throughput of the fastest reference tool, with a peak RSS under 100 MiB.
const (
	TargetRatio      = 1.0
	TargetPeakRSSMiB = 100
)

// Units explains the report's numbers.
const Units = "MB/s is 10^6 bytes per second of wall time measured around the child process (start to exit, so it includes the tool's start-up); " +
	"RSS is the child process's own peak resident set (getrusage ru_maxrss) in MiB (2^20 bytes); " +
	"CPU s is the child's user+system CPU seconds (median run); " +
	"ratio is a row's best MB/s divided by the best MB/s of the fastest reference tool (rclone, aws) on the same source; " +
	"durable MB/s adds the time the bench then takes to fsync the copy (Airlock's staging store has already synced it; rclone and aws s3 cp leave it in the page cache), and durable ratio compares those"

// Run is one timed copy by one tool.
type Run struct {
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mb_per_s"`
	// SyncSeconds is how long an fsync of the copy took after the tool
	// exited; DurableMBps counts it in.
	SyncSeconds float64 `json:"sync_seconds"`
	// ActivitySeconds is, for Airlock, how long ExtractObject itself took
	// (the rest of Seconds is the process's start and PlanImport).
	ActivitySeconds float64 `json:"activity_seconds,omitempty"`
	DurableMBps     float64 `json:"durable_mb_per_s"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	UserCPU         float64 `json:"user_cpu_s"`
	SysCPU          float64 `json:"sys_cpu_s"`
}

// Result is one tool's runs on one source and their summary.
type Result struct {
	Tool   string `json:"tool"`
	Source string `json:"source"`
	// Reference marks the tools Airlock is compared with.
	Reference bool `json:"reference"`
	// Command is how the tool was run (secrets, passed in the environment,
	// are not in it).
	Command    string  `json:"command"`
	Runs       []Run   `json:"runs"`
	BestMBps   float64 `json:"best_mb_per_s"`
	MedianMBps float64 `json:"median_mb_per_s"`
	PeakRSSMiB float64 `json:"peak_rss_mib"` // the largest over the runs
	CPUSeconds float64 `json:"cpu_s"`        // user+system, median run
	// Ratio is BestMBps over the best reference tool's BestMBps on the same
	// source (0 when no reference tool ran there).
	Ratio float64 `json:"ratio_vs_best_reference"`
	// BestDurableMBps and DurableRatio are the same for durable MB/s.
	BestDurableMBps float64 `json:"best_durable_mb_per_s"`
	DurableRatio    float64 `json:"durable_ratio_vs_best_reference"`
}

// Verdict says whether Airlock met the targets on one source.
type Verdict struct {
	Source        string  `json:"source"`
	BestReference string  `json:"best_reference"`
	Ratio         float64 `json:"ratio"`
	// BestDurableReference and DurableRatio compare durable MB/s.
	BestDurableReference string  `json:"best_durable_reference"`
	DurableRatio         float64 `json:"durable_ratio"`
	PeakRSSMiB           float64 `json:"peak_rss_mib"`
	FastEnough           bool    `json:"fast_enough"`
	SmallEnough          bool    `json:"small_enough"`
}

// Line is the verdict for people.
func (v Verdict) Line() string {
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	return fmt.Sprintf("%s: Airlock at %.2f× %s (target ≥ %.2f×: %s; %.2f× %s once each copy is on disk); peak RSS %.1f MiB (target < %d MiB: %s)",
		v.Source, v.Ratio, v.BestReference, TargetRatio, mark(v.FastEnough), v.DurableRatio, v.BestDurableReference, v.PeakRSSMiB, TargetPeakRSSMiB, mark(v.SmallEnough))
}

// Report is everything one bench run measured; it is written as JSON.
type Report struct {
	Date         time.Time         `json:"date"`
	ObjectBytes  int64             `json:"object_bytes"`
	ObjectSHA256 string            `json:"object_sha256"`
	RunsPerTool  int               `json:"runs_per_tool"`
	Units        string            `json:"units"`
	Airlock      map[string]string `json:"airlock_settings"`
	Tools        map[string]string `json:"tool_versions"`
	Cores        int               `json:"cores"`
	LoadBefore   string            `json:"load_before"`
	LoadAfter    string            `json:"load_after"`
	Notes        []string          `json:"notes"`
	Results      []Result          `json:"results"`
	Verdicts     []Verdict         `json:"verdicts"`
}

// median is the middle of xs (the mean of the two middle ones for an even count).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// summarize fills every result's best and median MB/s, peak RSS, CPU and
// ratio, and returns Airlock's verdict for each source it ran on.
func summarize(results []Result) []Verdict {
	bestRef := map[string]*Result{}
	bestDurable := map[string]*Result{}
	for i := range results {
		r := &results[i]
		var mbps, durable, cpu []float64
		var peak int64
		for _, run := range r.Runs {
			mbps = append(mbps, run.MBps)
			durable = append(durable, run.DurableMBps)
			cpu = append(cpu, run.UserCPU+run.SysCPU)
			peak = max(peak, run.PeakRSSBytes)
		}
		r.BestMBps = slices.Max(append(mbps, 0))
		r.BestDurableMBps = slices.Max(append(durable, 0))
		r.MedianMBps = median(mbps)
		r.CPUSeconds = median(cpu)
		r.PeakRSSMiB = float64(peak) / (1 << 20)
		if r.Reference {
			if b := bestRef[r.Source]; b == nil || r.BestMBps > b.BestMBps {
				bestRef[r.Source] = r
			}
			if b := bestDurable[r.Source]; b == nil || r.BestDurableMBps > b.BestDurableMBps {
				bestDurable[r.Source] = r
			}
		}
	}
	var verdicts []Verdict
	for i := range results {
		r := &results[i]
		b := bestRef[r.Source]
		if b == nil || b.BestMBps == 0 {
			continue
		}
		r.Ratio = r.BestMBps / b.BestMBps
		d := bestDurable[r.Source]
		if d.BestDurableMBps > 0 {
			r.DurableRatio = r.BestDurableMBps / d.BestDurableMBps
		}
		if !r.Reference {
			verdicts = append(verdicts, Verdict{
				Source:               r.Source,
				BestReference:        b.Tool,
				Ratio:                r.Ratio,
				BestDurableReference: d.Tool,
				DurableRatio:         r.DurableRatio,
				PeakRSSMiB:           r.PeakRSSMiB,
				FastEnough:           r.Ratio >= TargetRatio,
				SmallEnough:          r.PeakRSSMiB < TargetPeakRSSMiB,
			})
		}
	}
	return verdicts
}

// writeTable prints the results as a Markdown table.
func writeTable(w io.Writer, results []Result) {
	rows := [][]string{{"tool", "source", "best MB/s", "median MB/s", "peak RSS MiB", "CPU s", "ratio vs best reference", "best durable MB/s", "durable ratio"}}
	ratio := func(x float64) string {
		if x > 0 {
			return fmt.Sprintf("%.2f", x)
		}
		return "-"
	}
	for _, r := range results {
		rows = append(rows, []string{r.Tool, r.Source,
			fmt.Sprintf("%.1f", r.BestMBps), fmt.Sprintf("%.1f", r.MedianMBps),
			fmt.Sprintf("%.1f", r.PeakRSSMiB), fmt.Sprintf("%.1f", r.CPUSeconds), ratio(r.Ratio),
			fmt.Sprintf("%.1f", r.BestDurableMBps), ratio(r.DurableRatio)})
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cells {
			pad := width[i] - len([]rune(c))
			if i >= 2 { // numbers: right-aligned
				fmt.Fprintf(&b, " %s%s |", strings.Repeat(" ", pad), c)
			} else {
				fmt.Fprintf(&b, " %s%s |", c, strings.Repeat(" ", pad))
			}
		}
		fmt.Fprintln(w, b.String())
	}
	line(rows[0])
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
		if i >= 2 {
			sep[i] = strings.Repeat("-", n-1) + ":"
		}
	}
	line(sep)
	for _, row := range rows[1:] {
		line(row)
	}
}

// writeJSON writes the report to path, creating its folder.
func writeJSON(path string, rep Report) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("-o %s: creating the folder: %w", path, err)
		}
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("-o %s: %w", path, err)
	}
	return nil
}
