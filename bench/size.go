package main

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes a size flag may end in, longest first so that
// "MiB" is tried before "B". Binary units (KiB, MiB, GiB) are powers of
// 1024; decimal ones (KB, MB, GB) powers of 1000, as MB/s in the report.
var sizeUnits = []struct {
	suffix string
	factor int64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30},
	{"b", 1},
}

// parseSize reads a byte count such as 1GiB, 512MiB, 100MB or 1048576.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	factor := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, factor = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: write a whole number of bytes, optionally followed by KiB, MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000), e.g. 1GiB", s)
	}
	if n > 0 && factor > (1<<62)/n {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * factor, nil
}

// formatSize writes n in the largest binary unit that divides it exactly
// (1GiB, 16MiB), else in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.factor && n%u.factor == 0 {
			return strconv.FormatInt(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// sizeFlag is a flag.Value holding a byte count.
type sizeFlag struct{ n *int64 }

func (f sizeFlag) String() string {
	if f.n == nil {
		return "0"
	}
	return formatSize(*f.n)
}

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}
