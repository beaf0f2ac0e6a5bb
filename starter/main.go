// Command airlock is Airlock's command-line client: it validates data source
// documents, starts imports, shows and lists requests, and sends decisions.
// It talks to the Temporal server named by the standard TEMPORAL_* environment
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS and API key variables).
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	root := newRootCmd(os.Stdout, os.Stderr)
	if err := root.Execute(); err != nil {
		var quiet *exitError
		if !errors.As(err, &quiet) {
			fmt.Fprintln(os.Stderr, "airlock:", err)
		}
		os.Exit(1)
	}
}

// exitError is an error whose explanation was already printed.
type exitError struct{ err error }

func (e *exitError) Error() string { return e.err.Error() }
