package main

import (
	"fmt"
	"os"

	"github.com/airlockhq/airlock/model"
)

// readDocuments parses every -f file and collects their documents. It
// returns all the files' problems together.
func readDocuments(files []string) (model.Documents, error) {
	var all model.Documents
	var errs model.FieldErrors
	if len(files) == 0 {
		return all, fmt.Errorf("no document given: pass -f FILE (a YAML file with an AnalyticsWorkspaceDataSource)")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return all, fmt.Errorf("-f %s: %w", f, err)
		}
		docs, err := model.ParseDocuments(f, data)
		if err != nil {
			if fe, ok := model.AsFieldErrors(err); ok {
				errs = append(errs, fe...)
				continue
			}
			return all, err
		}
		all.DataSources = append(all.DataSources, docs.DataSources...)
		all.Bindings = append(all.Bindings, docs.Bindings...)
	}
	if len(errs) > 0 {
		return model.Documents{}, errs
	}
	return all, nil
}
