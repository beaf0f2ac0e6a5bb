package activities

import (
	"context"
	"fmt"
	"sort"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/airlockhq/airlock/connectors"
	"github.com/airlockhq/airlock/model"
)

// FindRunningImportsInput names the data source a scheduled import is about
// to import.
type FindRunningImportsInput struct {
	DataSource string `json:"datasource"`
}

// FindRunningImportsResult lists the ids of the imports of the data source
// that are running now (sorted; empty when none is).
type FindRunningImportsResult struct {
	Running []string `json:"running"`
}

// Names the running-imports query uses. They are the workflow type and
// search attributes of workflows/names.go (ImportWorkflowName,
// SearchAttrDataSource), which this package cannot import; a test in
// workflows checks that they agree.
const (
	importWorkflowType  = "ImportWorkflow"
	dataSourceAttribute = "AirlockDataSource"
)

// maxRunningImports bounds how many running imports FindRunningImports
// reports: one is enough to skip a run; a few name them.
const maxRunningImports = 20

// RunningImportsQuery is the visibility query that selects the running
// imports of a data source. name must be a valid name (model.ValidName):
// it is quoted into the query.
func RunningImportsQuery(name string) string {
	return fmt.Sprintf("WorkflowType = '%s' AND %s = '%s' AND ExecutionStatus = 'Running'", importWorkflowType, dataSourceAttribute, name)
}

// FindRunningImports asks Temporal's visibility store which imports of a
// data source are running, so that a scheduled import does not start a
// second one. Visibility trails the workflows by a moment: an import
// started within the last second may not be seen yet.
func (a *Activities) FindRunningImports(ctx context.Context, in FindRunningImportsInput) (FindRunningImportsResult, error) {
	if !model.ValidName(in.DataSource) {
		return FindRunningImportsResult{}, a.failure(connectors.BadInput("datasource: invalid data source name %q: %s", in.DataSource, model.NameRule))
	}
	if a.Temporal == nil {
		return FindRunningImportsResult{}, a.failure(connectors.BadInput("this worker has no Temporal client (Activities.Temporal) to look for running imports with: the worker sets it at startup; a test must set it"))
	}
	q := RunningImportsQuery(in.DataSource)
	res := FindRunningImportsResult{Running: []string{}}
	var token []byte
	for {
		resp, err := a.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: q, PageSize: maxRunningImports, NextPageToken: token,
		})
		if err != nil {
			return FindRunningImportsResult{}, a.failure(fmt.Errorf("looking for running imports of data source %s (%s): %w", in.DataSource, q, err))
		}
		for _, e := range resp.Executions {
			res.Running = append(res.Running, e.GetExecution().GetWorkflowId())
		}
		token = resp.NextPageToken
		if len(token) == 0 || len(res.Running) >= maxRunningImports {
			break
		}
	}
	sort.Strings(res.Running)
	return res, nil
}
