package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/preview"
)

// Bounds on the copy of a Parquet file made on local disk when its store
// cannot read at offsets (object stores through Store.Open): a Parquet
// preview needs the footer at the end of the file first. The API's preview
// copies up to maxSpoolBytes; a console page, which previews several files
// while it renders, up to consoleSpoolBytes each.
const (
	maxSpoolBytes     = 1 << 30
	consoleSpoolBytes = 64 << 20
)

// readPreview previews the stored file key (size bytes; file names it for
// its kind and messages). Delimited text streams from the store; Parquet is
// read at offsets straight from a store whose reader can (a local store's
// file), otherwise from a temporary local copy.
func readPreview(ctx context.Context, store connectors.Store, key, file string, size int64, rows int, spoolLimit int64) (preview.Table, error) {
	rc, err := store.Open(ctx, key)
	if err != nil {
		return preview.Table{}, err
	}
	defer rc.Close()
	switch strings.ToLower(path.Ext(file)) {
	case ".csv":
		return preview.CSV(rc, rows)
	case ".tsv":
		return preview.TSV(rc, rows)
	}
	if ra, ok := rc.(io.ReaderAt); ok {
		return preview.Parquet(ra, size, rows)
	}
	if size > spoolLimit {
		return preview.Table{}, previewTooLarge(file, size, spoolLimit)
	}
	tmp, err := os.CreateTemp("", "airlock-preview-*.parquet")
	if err != nil {
		return preview.Table{}, fmt.Errorf("making a local copy to preview: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(rc, spoolLimit+1))
	if err != nil {
		return preview.Table{}, fmt.Errorf("copying the file to preview: %w", err)
	}
	if n > spoolLimit {
		return preview.Table{}, previewTooLarge(file, n, spoolLimit)
	}
	return preview.Parquet(tmp, n, rows)
}
