package file

import (
	"mime"
	"path"
	"strings"
)

// mediaTypes are the formats research data usually comes in. They are fixed
// here rather than left to the system's mime tables so that every worker
// labels the same file the same way.
var mediaTypes = map[string]string{
	".csv":     "text/csv",
	".tsv":     "text/tab-separated-values",
	".tab":     "text/tab-separated-values",
	".txt":     "text/plain",
	".md":      "text/markdown",
	".html":    "text/html",
	".htm":     "text/html",
	".xml":     "application/xml",
	".json":    "application/json",
	".jsonl":   "application/x-ndjson",
	".ndjson":  "application/x-ndjson",
	".yaml":    "application/yaml",
	".yml":     "application/yaml",
	".parquet": "application/vnd.apache.parquet",
	".arrow":   "application/vnd.apache.arrow.file",
	".feather": "application/vnd.apache.arrow.file",
	".sql":     "application/sql",
	".pdf":     "application/pdf",
	".zip":     "application/zip",
	".gz":      "application/gzip",
	".tgz":     "application/gzip",
	".bz2":     "application/x-bzip2",
	".xz":      "application/x-xz",
	".zst":     "application/zstd",
	".tar":     "application/x-tar",
	".7z":      "application/x-7z-compressed",
	".xlsx":    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	".xls":     "application/vnd.ms-excel",
	".docx":    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	".doc":     "application/msword",
	".pptx":    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
	".odt":     "application/vnd.oasis.opendocument.text",
	".ods":     "application/vnd.oasis.opendocument.spreadsheet",
	".png":     "image/png",
	".jpg":     "image/jpeg",
	".jpeg":    "image/jpeg",
	".gif":     "image/gif",
	".tif":     "image/tiff",
	".tiff":    "image/tiff",
	".svg":     "image/svg+xml",
	".webp":    "image/webp",
	".dcm":     "application/dicom",
}

// MediaType guesses a file's media type (an RO-Crate encodingFormat) from
// its name's extension: the table above first, then the system's mime
// tables, then application/octet-stream. Parameters such as charset are
// dropped.
func MediaType(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if ext == "" {
		return "application/octet-stream"
	}
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	if t := mime.TypeByExtension(ext); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
		return t
	}
	return "application/octet-stream"
}
