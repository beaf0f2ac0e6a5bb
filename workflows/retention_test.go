package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/airlockhq/airlock/activities"
	"github.com/airlockhq/airlock/model"
)

// retentionHarness runs RetentionWorkflow alone, over the harness's
// stores, recording when (on the workflow's clock) each DeleteArea began.
func retentionHarness(t *testing.T) (*harness, *[]time.Time) {
	h := newHarness(t)
	h.env.RegisterWorkflowWithOptions(RetentionWorkflow, workflow.RegisterOptions{Name: RetentionWorkflowName})
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: "egress-x-delete-staging", TaskQueue: TaskQueue})
	var starts []time.Time
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "DeleteArea" {
			starts = append(starts, h.env.Now())
		}
	})
	return h, &starts
}

func putFile(t *testing.T, h *harness, key, content string) {
	w, err := h.staging.Create(context.Background(), key, nil)
	require.NoError(t, err)
	_, err = w.Write([]byte(content))
	require.NoError(t, err)
	require.NoError(t, w.Commit())
}

func TestRetentionWorkflowDeletesWhenDueAndNotBefore(t *testing.T) {
	h, starts := retentionHarness(t)
	putFile(t, h, "egress-x/a.csv", "a")
	putFile(t, h, "egress-x/b/c.csv", "c")
	putFile(t, h, "other/keep.csv", "k")
	start := h.env.Now()
	due := start.Add(72 * time.Hour)
	var before RetentionStatus
	h.at(71*time.Hour, func() {
		v, err := h.env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&before))
	})
	h.env.ExecuteWorkflow(RetentionWorkflowName, RetentionInput{Request: "egress-x", Kind: model.KindEgress, Project: testProject,
		Workspace: testWorkspace, Deletion: model.ScheduledDeletion{Zone: activities.ZoneStaging, Prefix: "egress-x", DueAt: due, Reason: "test"}})
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RetentionResult
	require.NoError(t, h.env.GetWorkflowResult(&res))

	assert.Equal(t, RetentionScheduled, before.State, "an hour before it is due nothing has happened")
	require.Len(t, *starts, 1)
	assert.False(t, (*starts)[0].Before(due), "deleted at %s, due %s", (*starts)[0], due)
	assert.Less(t, (*starts)[0].Sub(due), time.Minute)
	require.NotNil(t, res.DeletedAt)
	assert.Equal(t, 2, res.Removed)
	assert.Zero(t, res.Rounds)
	left := storeFiles(t, h.staging, "")
	assert.Equal(t, []string{"other/keep.csv"}, sortedKeys(left), "only the request's area is deleted")
}

func TestRetentionWorkflowRetriesAFailingDeletionAndReportsIt(t *testing.T) {
	h, starts := retentionHarness(t)
	// The destination is missing from the worker's configuration: every
	// round fails, and is reported, until an operator puts it back.
	var retrying RetentionStatus
	h.at(30*time.Minute, func() {
		v, err := h.env.QueryWorkflow(QueryState)
		require.NoError(t, err)
		require.NoError(t, v.Get(&retrying))
		h.acts.Destinations = map[string]activities.EgressDestination{"outbox": {Store: h.workspaces, Revocable: true}}
	})
	h.env.ExecuteWorkflow(RetentionWorkflowName, RetentionInput{Request: "egress-x", Kind: model.KindEgress, Project: testProject,
		Workspace: testWorkspace, Deletion: model.ScheduledDeletion{Zone: activities.ZoneDestination, Destination: "outbox",
			Prefix: "egress-x", DueAt: h.env.Now().Add(time.Minute), Reason: "test"}})
	require.True(t, h.env.IsWorkflowCompleted())
	require.NoError(t, h.env.GetWorkflowError())
	var res RetentionResult
	require.NoError(t, h.env.GetWorkflowResult(&res))

	assert.Equal(t, RetentionRetrying, retrying.State)
	assert.GreaterOrEqual(t, retrying.Rounds, 2)
	assert.True(t, strings.Contains(retrying.LastError, "outbox"), "the failure names the destination: %s", retrying.LastError)
	require.NotNil(t, res.DeletedAt, "the deletion is done once the destination is back")
	assert.Equal(t, retrying.Rounds, res.Rounds)
	assert.Greater(t, len(*starts), res.Rounds, "one more DeleteArea than failed rounds")
}

func TestRetentionWorkflowCancelledBeforeDueRecordsIt(t *testing.T) {
	h, starts := retentionHarness(t)
	h.at(time.Hour, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(RetentionWorkflowName, RetentionInput{Request: "egress-x", Kind: model.KindEgress, Project: testProject,
		Workspace: testWorkspace, Deletion: model.ScheduledDeletion{Zone: activities.ZoneStaging, Prefix: "egress-x", DueAt: h.env.Now().Add(72 * time.Hour)}})
	require.True(t, h.env.IsWorkflowCompleted())
	var res RetentionResult
	require.NoError(t, h.env.GetWorkflowResult(&res))
	assert.True(t, res.Cancelled)
	assert.Empty(t, *starts)
}

func TestRejectedImportKeepsStagingForItsGraceAndCompletedImportSchedulesWorkspaceDeletion(t *testing.T) {
	t.Run("rejected", func(t *testing.T) {
		h := newHarness(t)
		h.env.RegisterWorkflowWithOptions(RetentionWorkflow, workflow.RegisterOptions{Name: RetentionWorkflowName})
		p := h.acts.Policies.Policies[policyStandard]
		p.Retention.StagingGrace = model.Duration(7 * 24 * time.Hour)
		h.acts.Policies.Policies[policyStandard] = p
		h.decideAt(time.Minute, model.DecisionRequest{Stage: stageEng, By: "dana", Decision: model.Reject, Comment: "wrong extract", ManifestDigest: currentDigest})
		var during map[string][]byte
		h.at(6*24*time.Hour, func() { during = storeFiles(t, h.staging, testWorkflowID) })
		h.run(testInput())
		res := h.result()
		assert.Equal(t, model.StateRejected, res.State)
		st := h.state()
		require.Len(t, st.Deletions, 1)
		assert.Equal(t, activities.ZoneStaging, st.Deletions[0].Zone)
		assert.Equal(t, st.FinishedAt.Add(7*24*time.Hour), st.Deletions[0].DueAt)
		assert.NotEmpty(t, during, "staging is kept for the grace period")
		h.requireStagingClean() // then its RetentionWorkflow deleted it
	})
	t.Run("completed", func(t *testing.T) {
		h := newHarness(t)
		h.env.RegisterWorkflowWithOptions(RetentionWorkflow, workflow.RegisterOptions{Name: RetentionWorkflowName})
		in := testInput()
		in.DataSource.Metadata.Annotations = map[string]string{model.RetentionAnnotation: "2160h"}
		h.decideAt(time.Minute, approve(stageEng, "dana"))
		h.decideAt(2*time.Minute, approve(stageIG, "ian"))
		h.run(in)
		assert.Equal(t, model.StateCompleted, h.result().State)
		st := h.state()
		require.Len(t, st.Deletions, 1)
		d := st.Deletions[0]
		assert.Equal(t, activities.ZoneWorkspace, d.Zone)
		assert.Equal(t, activities.WorkspacePrefix(testWorkspace, testDataSource, testWorkflowID), d.Prefix)
		assert.Equal(t, st.FinishedAt.Add(2160*time.Hour), d.DueAt)
		assert.Contains(t, d.Reason, model.RetentionAnnotation)
		h.requireStagingClean()
	})
	t.Run("bad annotation", func(t *testing.T) {
		h := newHarness(t)
		in := testInput()
		in.DataSource.Metadata.Annotations = map[string]string{model.RetentionAnnotation: "90 days"}
		h.env.ExecuteWorkflow(ImportWorkflowName, in)
		err := h.env.GetWorkflowError()
		require.Error(t, err)
		assert.Contains(t, err.Error(), model.RetentionAnnotation)
	})
}
