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
	ImportWorkflowName = "ImportWorkflow"
	UploadWorkflowName = "UploadWorkflow"
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

// Search attribute names (all Keyword), upserted at every transition.
const (
	SearchAttrKind         = "AirlockKind"
	SearchAttrState        = "AirlockState"
	SearchAttrProject      = "AirlockProject"
	SearchAttrDataSource   = "AirlockDataSource"
	SearchAttrWorkspace    = "AirlockWorkspace"
	SearchAttrAwaitingRole = "AirlockAwaitingRole"
	SearchAttrRequester    = "AirlockRequester"
)

// SearchAttributeNames lists every custom search attribute, for registering
// them with a server (all are Keyword).
var SearchAttributeNames = []string{
	SearchAttrKind, SearchAttrState, SearchAttrProject, SearchAttrDataSource,
	SearchAttrWorkspace, SearchAttrAwaitingRole, SearchAttrRequester,
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
)
