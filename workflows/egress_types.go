package workflows

import (
	"github.com/airlockhq/airlock/model"
)

// EgressInput starts an egress: files of a workspace to leave it for a
// destination named in the configuration, after checks and output checking.
type EgressInput struct {
	Request   model.EgressRequestInput `json:"request"`
	Requester string                   `json:"requester"`
	// Policy names the egress policy to use; empty means the project's default.
	Policy string `json:"policy,omitempty"`
	// Via names the entry point that started the egress (cli, api).
	Via string `json:"via,omitempty"`
}

// EgressResult is how an egress ended.
type EgressResult struct {
	State          model.State `json:"state"`
	Location       string      `json:"location,omitempty"`
	ManifestDigest string      `json:"manifest_digest,omitempty"`
	Files          int         `json:"files"`
	Bytes          int64       `json:"bytes"`
	Error          string      `json:"error,omitempty"`
}

// ReviewResult answers an accepted review Update. Reviews is how many the
// turn has and needs; Files holds the per-file verdicts only once the
// turn's reviews are all in (an independent review reveals nothing before).
type ReviewResult struct {
	Turn          int                `json:"turn"`
	ReviewsIn     int                `json:"reviews_in"`
	ReviewsNeeded int                `json:"reviews_needed"`
	State         model.State        `json:"state"`
	Files         []model.EgressFile `json:"files,omitempty"`
}

// ResubmitResult answers an accepted resubmit Update: the new turn is CHECKING.
type ResubmitResult struct {
	Turn  int         `json:"turn"`
	State model.State `json:"state"`
}

// WithdrawResult answers an accepted withdraw Update.
type WithdrawResult struct {
	State model.State `json:"state"`
}

// RevokeResult answers an accepted revoke Update once the revocation is done.
type RevokeResult struct {
	State      model.State            `json:"state"`
	Revocation model.RevocationRecord `json:"revocation"`
}

// ErrTypeEgressFailed marks an egress that ended FAILED.
const ErrTypeEgressFailed = "EgressFailed"
