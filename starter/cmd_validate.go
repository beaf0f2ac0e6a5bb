package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlockhq/airlock/model"
)

func (a *app) validateCmd() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE",
		Short: "Check data source and binding documents without contacting a server",
		Long: `validate parses AnalyticsWorkspaceDataSource and AnalyticsWorkspaceDataBinding
documents exactly as airlock import would, and reports every problem with its
field path. It exits 1 if any document is invalid.`,
		Example: `  airlock validate -f examples/datasources/sample-file.yaml
  airlock validate -f datasource.yaml -f binding.yaml -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			docs, err := readDocuments(files)
			type problem struct {
				File  string `json:"file"`
				Line  int    `json:"line,omitempty"`
				Field string `json:"field,omitempty"`
				Error string `json:"error"`
			}
			if err != nil {
				fe, ok := model.AsFieldErrors(err)
				if !ok {
					return err
				}
				if a.output == "json" {
					var ps []problem
					for _, e := range fe {
						ps = append(ps, problem{File: e.File, Line: e.Line, Field: e.Path, Error: e.Msg})
					}
					_ = a.printJSON(map[string]any{"valid": false, "errors": ps})
				} else {
					for _, e := range fe {
						fmt.Fprintln(a.errOut, e.Error())
					}
					fmt.Fprintf(a.errOut, "%d problem(s) found; nothing was started\n", len(fe))
				}
				return &exitError{err}
			}
			if a.output == "json" {
				var names []string
				for _, ds := range docs.DataSources {
					names = append(names, ds.Metadata.Name)
				}
				return a.printJSON(map[string]any{"valid": true, "datasources": names, "bindings": len(docs.Bindings)})
			}
			for _, ds := range docs.DataSources {
				fmt.Fprintf(a.out, "%s: valid %s data source (%d connection(s), %d object(s), project %s)\n",
					ds.Metadata.Name, ds.Spec.Type, len(ds.Spec.Connections), len(ds.Spec.Objects), ds.Spec.Project.ID)
			}
			for _, b := range docs.Bindings {
				fmt.Fprintf(a.out, "%s: valid binding of data source %s to workspace %s\n", b.Metadata.Name, b.Spec.DataSource, b.Spec.Workspace)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "file", "f", nil, "YAML file with data source and/or binding documents (repeatable)")
	return cmd
}
