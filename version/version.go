// Package version holds the Airlock release this binary was built from; the
// Makefile sets it with -ldflags "-X github.com/airlockhq/airlock/version.Version=...".
package version

// Version is recorded in every crate's CreateAction as the instrument's version.
var Version = "0.1.0-dev"
