// Package workflows holds Airlock's deterministic workflow code: the state of
// each request, its approval gates and its timers. All I/O happens in
// activities; the names clients use to reach a workflow are the constants here.
package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the task queue Airlock's workers poll.
const TaskQueue = "airlock"

// Workflow type names.
const (
	ImportWorkflowName          = "ImportWorkflow"
	UploadWorkflowName          = "UploadWorkflow"
	EgressWorkflowName          = "EgressWorkflow"
	RetentionWorkflowName       = "RetentionWorkflow"
	ScheduledImportWorkflowName = "ScheduledImportWorkflow"
)

// Message names: the decide Update and Signal take a model.DecisionRequest;
// the cancel Update takes a model.CancelRequest; the state Query returns a
// model.RequestStatus; an upload's confirm-upload Update takes a
// model.UploadConfirmation and answers a ConfirmUploadResult.
const (
	UpdateDecide        = "decide"
	SignalDecide        = "decide"
	UpdateCancel        = "cancel"
	QueryState          = "state"
	UpdateConfirmUpload = "confirm-upload"
)

// Egress messages: the review Update and Signal take a model.EgressReview
// and answer a ReviewResult; resubmit takes a model.Resubmission, withdraw
// a model.Withdrawal, revoke a model.Revocation. An egress answers the
// state Query too, holding back independent reviews until all are in.
const (
	UpdateReview   = "review"
	SignalReview   = "review"
	UpdateResubmit = "resubmit"
	UpdateWithdraw = "withdraw"
	UpdateRevoke   = "revoke"
)

// Kinds a run's AirlockKind search attribute takes besides the request
// kinds (model.Kind): a retention deletion and a scheduled import's run.
const (
	KindRetention       = "retention"
	KindScheduledImport = "scheduled-import"
)

// Search attribute names, upserted at every transition. All are Keyword
// but AirlockDeletionDue (Datetime): when a RetentionWorkflow deletes.
const (
	SearchAttrKind         = "AirlockKind"
	SearchAttrState        = "AirlockState"
	SearchAttrProject      = "AirlockProject"
	SearchAttrDataSource   = "AirlockDataSource"
	SearchAttrWorkspace    = "AirlockWorkspace"
	SearchAttrAwaitingRole = "AirlockAwaitingRole"
	SearchAttrRequester    = "AirlockRequester"
	SearchAttrDeletionDue  = "AirlockDeletionDue"
	// SearchAttrRequest names the request a retention deletion or a
	// scheduled run belongs to.
	SearchAttrRequest  = "AirlockRequest"
	SearchAttrSchedule = "AirlockSchedule"
)

// SearchAttributeNames lists every custom search attribute, for registering
// them with a server; SearchAttributeTypes gives each one's type.
var SearchAttributeNames = []string{
	SearchAttrKind, SearchAttrState, SearchAttrProject, SearchAttrDataSource,
	SearchAttrWorkspace, SearchAttrAwaitingRole, SearchAttrRequester,
	SearchAttrDeletionDue, SearchAttrRequest, SearchAttrSchedule,
}

// SearchAttributeTypes maps each custom search attribute to its type, as
// `temporal server start-dev --search-attribute NAME=TYPE` names it.
var SearchAttributeTypes = map[string]string{
	SearchAttrKind: "Keyword", SearchAttrState: "Keyword", SearchAttrProject: "Keyword",
	SearchAttrDataSource: "Keyword", SearchAttrWorkspace: "Keyword", SearchAttrAwaitingRole: "Keyword",
	SearchAttrRequester: "Keyword", SearchAttrDeletionDue: "Datetime", SearchAttrRequest: "Keyword",
	SearchAttrSchedule: "Keyword",
}

// DevServerSearchAttributeArgs are the `--search-attribute NAME=TYPE`
// arguments that register every custom search attribute with
// `temporal server start-dev`.
func DevServerSearchAttributeArgs() []string {
	var args []string
	for _, name := range SearchAttributeNames {
		args = append(args, "--search-attribute", name+"="+SearchAttributeTypes[name])
	}
	return args
}

// Typed keys for the search attributes.
var (
	KeyKind         = temporal.NewSearchAttributeKeyKeyword(SearchAttrKind)
	KeyState        = temporal.NewSearchAttributeKeyKeyword(SearchAttrState)
	KeyProject      = temporal.NewSearchAttributeKeyKeyword(SearchAttrProject)
	KeyDataSource   = temporal.NewSearchAttributeKeyKeyword(SearchAttrDataSource)
	KeyWorkspace    = temporal.NewSearchAttributeKeyKeyword(SearchAttrWorkspace)
	KeyAwaitingRole = temporal.NewSearchAttributeKeyKeyword(SearchAttrAwaitingRole)
	KeyRequester    = temporal.NewSearchAttributeKeyKeyword(SearchAttrRequester)
	KeyDeletionDue  = temporal.NewSearchAttributeKeyTime(SearchAttrDeletionDue)
	KeyRequest      = temporal.NewSearchAttributeKeyKeyword(SearchAttrRequest)
	KeySchedule     = temporal.NewSearchAttributeKeyKeyword(SearchAttrSchedule)
)
