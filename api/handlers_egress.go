package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/config"
	"github.com/airlockhq/airlock/model"
	"github.com/airlockhq/airlock/releasemanifest"
	"github.com/airlockhq/airlock/requests"
	"github.com/airlockhq/airlock/secrets"
	"github.com/airlockhq/airlock/workflows"
)

// egressService is what the egress routes need of the requests package.
type egressService interface {
	StartEgress(ctx context.Context, in requests.EgressStart) (string, error)
	Review(ctx context.Context, id string, r model.EgressReview) (workflows.ReviewResult, error)
	Resubmit(ctx context.Context, id string, r model.Resubmission) (workflows.ResubmitResult, error)
	Withdraw(ctx context.Context, id string, w model.Withdrawal) (workflows.WithdrawResult, error)
	Revoke(ctx context.Context, id string, r model.Revocation) (workflows.RevokeResult, error)
}

// egressDestination is a destination as the API lists it: its name and
// what it is, never where it is.
type egressDestination struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Revocable says whether a revocation (or the end of retention)
	// removes released copies there.
	Revocable bool `json:"revocable"`
}

// egressSettings are the configuration's egress block as the API needs it.
type egressSettings struct {
	// Destinations are the destinations the configuration agrees, in its
	// order (egress.destinations).
	Destinations []egressDestination
	// PublicKey returns the public half of the release signing key
	// (egress.signingKey), as PEM, and its key id. Nil when the
	// configuration names no signing key.
	PublicKey func(ctx context.Context) (pemBytes []byte, keyID string, err error)
}

// egressSettingsFrom reads the configuration's egress block: the
// destinations' names and descriptions (never where they are) and, when it
// names a signing key, how to read its public half.
func egressSettingsFrom(cfg *config.Config) egressSettings {
	var es egressSettings
	for _, d := range cfg.Egress.Destinations {
		es.Destinations = append(es.Destinations, egressDestination{Name: d.Name, Description: d.Description, Revocable: d.IsRevocable()})
	}
	if cfg.Egress.SigningKey != "" {
		es.PublicKey = signingPublicKey(cfg.SecretProvider(), cfg.Egress.SigningKey)
	}
	return es
}

// signingPublicKey resolves the release signing key through the secret
// provider each time it is asked (a rotated key is served at once) and
// returns its public half. Errors name the secret key, never its value.
func signingPublicKey(p *secrets.Provider, key string) func(ctx context.Context) ([]byte, string, error) {
	return func(ctx context.Context) ([]byte, string, error) {
		v, err := p.Lookup(ctx, key)
		if err != nil {
			return nil, "", fmt.Errorf("egress.signingKey: %w", err)
		}
		priv, err := releasemanifest.ParsePrivateKey([]byte(v))
		if err != nil {
			return nil, "", fmt.Errorf("egress.signingKey: the secret %s does not hold an Ed25519 private key: %s", key, p.Scrub(err.Error()))
		}
		pub, err := releasemanifest.PublicKeyPEM(priv)
		if err != nil {
			return nil, "", fmt.Errorf("egress.signingKey: deriving the public key: %s", p.Scrub(err.Error()))
		}
		return pub, releasemanifest.KeyID(priv.Public().(ed25519.PublicKey)), nil
	}
}

// egressRoutes adds the egress routes to the API.
func (s *server) egressRoutes(api func(pattern string, h apiFunc)) {
	api("POST "+apiPrefix+"/egress", s.createEgress)
	api("GET "+apiPrefix+"/egress/destinations", s.egressDestinations)
	api("GET "+apiPrefix+"/egress/public-key", s.egressPublicKey)
	api("POST "+apiPrefix+"/requests/{id}/reviews", s.review)
	api("POST "+apiPrefix+"/requests/{id}/resubmit", s.resubmit)
	api("POST "+apiPrefix+"/requests/{id}/withdraw", s.withdraw)
	api("POST "+apiPrefix+"/requests/{id}/revoke", s.revoke)
}

// egressBody asks for an egress. Who asks is the signed-in caller.
type egressBody struct {
	Workspace     string   `json:"workspace"`
	Project       string   `json:"project"`
	Destination   string   `json:"destination"`
	Files         []string `json:"files"`
	Justification string   `json:"justification"`
	Policy        string   `json:"policy"`
	// ID is the request id to use (optional): a client that retries with
	// the same id never starts the egress twice.
	ID string `json:"id"`
}

// createEgress: POST /api/v1/egress -> 201 {"id", "state"}. It needs the
// capability egress:<project>.
func (s *server) createEgress(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body egressBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	start := requests.EgressStart{
		ID: body.ID, Requester: ident.Username, Via: via, Policy: body.Policy,
		Input: model.EgressRequestInput{Workspace: body.Workspace, Project: body.Project, Destination: body.Destination,
			Files: body.Files, Justification: body.Justification},
	}
	if err := requests.CheckEgressStart(start); err != nil {
		return s.serviceError("", err)
	}
	if !ident.Caps.CanEgress(body.Project) {
		return errorf(http.StatusForbidden, "%s may not ask for egress from project %s: it needs the capability egress:%s (or egress:*), which your sign-in does not grant", ident.Username, body.Project, body.Project)
	}
	if err := s.knownDestination(body.Destination); err != nil {
		return err
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	id, err := s.requests.StartEgress(ctx, start)
	if err != nil {
		return s.serviceError("", err)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id, "state": string(model.StateChecking)})
	return nil
}

// knownDestination refuses a destination the configuration does not name.
func (s *server) knownDestination(name string) error {
	var names []string
	for _, d := range s.egress.Destinations {
		if d.Name == name {
			return nil
		}
		names = append(names, d.Name)
	}
	if len(names) == 0 {
		return errorf(http.StatusBadRequest, "destination %q: the configuration agrees no egress destinations (egress.destinations), so nothing can leave a workspace yet: ask the platform's administrators to add one", name)
	}
	return errorf(http.StatusBadRequest, "destination %q: not a destination the configuration agrees: use one of %s (GET %s/egress/destinations)", name, strings.Join(names, ", "), apiPrefix)
}

// egressDestinations: GET /api/v1/egress/destinations -> {"destinations": [...]}.
func (s *server) egressDestinations(w http.ResponseWriter, r *http.Request) error {
	if _, err := signedIn(r); err != nil {
		return err
	}
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	list := s.egress.Destinations
	if list == nil {
		list = []egressDestination{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"destinations": list})
	return nil
}

// keyIDHeader carries the key id beside the public key's PEM.
const keyIDHeader = "Airlock-Key-Id"

// egressPublicKey: GET /api/v1/egress/public-key -> the PEM of the key
// release manifests are signed with (as `openssl pkey -pubout` writes it),
// with its key id in the Airlock-Key-Id header.
func (s *server) egressPublicKey(w http.ResponseWriter, r *http.Request) error {
	if _, err := signedIn(r); err != nil {
		return err
	}
	if err := checkQuery(r.URL.Query()); err != nil {
		return err
	}
	if s.egress.PublicKey == nil {
		return errorf(http.StatusNotFound, "no release signing key: the configuration names none (egress.signingKey), so no release can be signed")
	}
	pemBytes, keyID, err := s.egress.PublicKey(r.Context())
	if err != nil {
		s.logger.Warn("reading the release signing key", "error", err)
		return errorf(http.StatusServiceUnavailable, "the release signing key cannot be read: %v", err)
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Header().Set("Content-Disposition", `inline; filename="airlock-egress-signing-key.pub.pem"`)
	w.Header().Set(keyIDHeader, keyID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(pemBytes)
	return nil
}

// readableEgress fetches an egress the caller may read.
func (s *server) readableEgress(r *http.Request, ident *auth.Identity, id, what string) (model.RequestStatus, error) {
	st, err := s.readable(r, ident, id)
	if err != nil {
		return st, err
	}
	if st.Kind != model.KindEgress || st.Egress == nil {
		how := fmt.Sprintf("decide it with POST %s/requests/%s/decisions", apiPrefix, id)
		return st, errorf(http.StatusConflict, "request %s is an %s, not an egress: it takes no %s (%s)", id, st.Kind, what, how)
	}
	return st, nil
}

// reviewBody is an output checker's review as the API takes it. Who
// reviews is the verified caller, never a field.
type reviewBody struct {
	// Stage defaults to the open one.
	Stage string `json:"stage"`
	// Turn and ManifestDigest name what was reviewed (egress.turn and
	// manifest_digest in the request's status).
	Turn           int                `json:"turn"`
	Files          []model.FileReview `json:"files"`
	Comment        string             `json:"comment"`
	ManifestDigest string             `json:"manifest_digest"`
}

// review: POST /api/v1/requests/{id}/reviews. It needs approve:<role> for
// the stage's role; the workflow applies every other rule (the requester
// never reviews, one review per checker and turn, a verdict on every open
// file, the digest) and its refusal comes back as 409 with its reason.
func (s *server) review(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body reviewBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	st, err := s.readableEgress(r, ident, id, "reviews")
	if err != nil {
		return err
	}
	stage, err := reviewedStage(st, body.Stage)
	if err != nil {
		return err
	}
	if !ident.CanApprove(stage.Role) {
		return errorf(http.StatusForbidden, "%s may not review stage %q of request %s: it needs the capability approve:%s, which your sign-in does not grant", ident.Username, stage.Name, id, stage.Role)
	}
	rv := model.EgressReview{
		Stage: stage.Name, By: ident.Username, Turn: body.Turn, Files: body.Files, Comment: body.Comment,
		ManifestDigest: body.ManifestDigest, Via: via, Roles: ident.ApproveRoles(),
	}
	if err := requests.CheckReview(rv); err != nil {
		return s.serviceError(id, err)
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Review(ctx, id, rv)
	if err != nil {
		return s.serviceError(id, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// reviewedStage is the stage a review names, or the open one when it names
// none.
func reviewedStage(st model.RequestStatus, name string) (model.StageStatus, error) {
	if name == "" {
		i := st.CurrentStage()
		if i < 0 || st.State != model.StateAwaitingApproval {
			return model.StageStatus{}, errorf(http.StatusConflict, "request %s is %s: reviews are accepted only while it is %s", st.ID, st.State, model.StateAwaitingApproval)
		}
		return st.Stages[i], nil
	}
	for _, sg := range st.Stages {
		if sg.Name == name {
			return sg, nil
		}
	}
	return model.StageStatus{}, errorf(http.StatusBadRequest, "stage %q: unknown stage (this request's stages: %s)", name, stageNames(st))
}

// resubmitBody is a requester's answer to a RETURNED egress: the files for
// the new turn (empty: the same files) and what changed.
type resubmitBody struct {
	Files   []string `json:"files"`
	Comment string   `json:"comment"`
}

// resubmit: POST /api/v1/requests/{id}/resubmit. Only the requester.
func (s *server) resubmit(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body resubmitBody
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	st, err := s.readableEgress(r, ident, id, "resubmissions")
	if err != nil {
		return err
	}
	if ident.Username != st.Requester {
		return errorf(http.StatusForbidden, "%s may not resubmit request %s: only its requester (%s) may", ident.Username, id, st.Requester)
	}
	rs := model.Resubmission{By: ident.Username, Files: body.Files, Comment: body.Comment, Via: via}
	if err := requests.CheckResubmission(rs); err != nil {
		return s.serviceError(id, err)
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Resubmit(ctx, id, rs)
	if err != nil {
		return s.serviceError(id, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// reasonBody carries the reason of a withdrawal or a revocation.
type reasonBody struct {
	Reason string `json:"reason"`
}

// withdraw: POST /api/v1/requests/{id}/withdraw. Only the requester; a
// checker stops a request with cancel.
func (s *server) withdraw(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body reasonBody
	if err := decodeBody(w, r, &body, true); err != nil {
		return err
	}
	id := r.PathValue("id")
	st, err := s.readableEgress(r, ident, id, "withdrawals")
	if err != nil {
		return err
	}
	if ident.Username != st.Requester {
		return errorf(http.StatusForbidden, "%s may not withdraw request %s: only its requester (%s) may; someone who may review it stops it with POST %s/requests/%s/cancel", ident.Username, id, st.Requester, apiPrefix, id)
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Withdraw(ctx, id, model.Withdrawal{By: ident.Username, Reason: body.Reason, Via: via})
	if err != nil {
		return s.serviceError(id, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// revoke: POST /api/v1/requests/{id}/revoke {"reason"}. The requester or
// someone who may review one of its stages; the answer comes once the
// released copies are removed.
func (s *server) revoke(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body reasonBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	id := r.PathValue("id")
	st, err := s.readableEgress(r, ident, id, "revocations")
	if err != nil {
		return err
	}
	if !mayCancel(ident, st) {
		return errorf(http.StatusForbidden, "%s may not revoke request %s: only its requester (%s) or someone who may review one of its stages (%s) may", ident.Username, id, st.Requester, stageRoles(st))
	}
	if strings.TrimSpace(body.Reason) == "" {
		return errorf(http.StatusBadRequest, "reason: missing: say why the release is revoked; it is recorded with the revocation")
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	res, err := s.requests.Revoke(ctx, id, model.Revocation{By: ident.Username, Reason: body.Reason, Via: via, Roles: ident.ApproveRoles()})
	if err != nil {
		return s.serviceError(id, err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
