package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/airlockhq/airlock/auth"
	"github.com/airlockhq/airlock/requests"
)

// scheduleService is what the server needs of the requests package to
// manage import schedules (requests.Service serves it through Temporal).
type scheduleService interface {
	CreateSchedule(ctx context.Context, in requests.CreateSchedule) (string, error)
	Schedule(ctx context.Context, id string) (requests.ScheduleSummary, error)
	ListSchedules(ctx context.Context) ([]requests.ScheduleSummary, error)
	PauseSchedule(ctx context.Context, id, by, note string) error
	UnpauseSchedule(ctx context.Context, id, by, note string) error
	DeleteSchedule(ctx context.Context, id string) error
}

// scheduleRoutes adds the schedule endpoints (when the server has a
// schedule service):
//
//	GET    /api/v1/schedules              the schedules the caller may see
//	POST   /api/v1/schedules              {"document", "workspace", "policy", "cron", "id", "note"} -> 201 {"id"}
//	GET    /api/v1/schedules/{id}         one schedule and its recent runs
//	POST   /api/v1/schedules/{id}/pause   {"note"}
//	POST   /api/v1/schedules/{id}/unpause {"note"}
//	DELETE /api/v1/schedules/{id}
//
// Creating, pausing, unpausing and deleting need import:<project> (the
// capability that starts the imports); reading needs that or
// read:<project>. A schedule the caller may not see answers 404, as a
// missing one does.
func (s *server) scheduleRoutes(api func(pattern string, h apiFunc)) {
	if s.schedules == nil {
		return
	}
	api("GET "+apiPrefix+"/schedules", s.listSchedules)
	api("POST "+apiPrefix+"/schedules", s.createSchedule)
	api("GET "+apiPrefix+"/schedules/{id}", s.getSchedule)
	api("DELETE "+apiPrefix+"/schedules/{id}", s.deleteSchedule)
	api("POST "+apiPrefix+"/schedules/{id}/pause", s.pauseSchedule(true))
	api("POST "+apiPrefix+"/schedules/{id}/unpause", s.pauseSchedule(false))
}

// scheduleBody creates a schedule: an import's body (importBody) and when
// to run it.
type scheduleBody struct {
	Document  string `json:"document"`
	Workspace string `json:"workspace"`
	Policy    string `json:"policy"`
	Cron      string `json:"cron"`
	ID        string `json:"id"`
	Note      string `json:"note"`
}

// noteBody is the optional body of a pause or unpause.
type noteBody struct {
	Note string `json:"note"`
}

// canSeeSchedule: the schedule's imports are the caller's to start, or
// its project's requests are theirs to read.
func canSeeSchedule(ident *auth.Identity, project string) bool {
	return ident.CanImport(project) || ident.Caps.CanReadProject(project)
}

// listSchedules: GET /api/v1/schedules -> {"schedules": [...]}.
func (s *server) listSchedules(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	all, err := s.schedules.ListSchedules(ctx)
	if err != nil {
		return s.scheduleError("", err)
	}
	visible := []requests.ScheduleSummary{}
	for _, sc := range all {
		if canSeeSchedule(ident, sc.Project) {
			visible = append(visible, sc)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": visible})
	return nil
}

// createSchedule: POST /api/v1/schedules -> 201 {"id"}.
func (s *server) createSchedule(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	var body scheduleBody
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	start, err := importFromDocument(importBody{Document: body.Document, Workspace: body.Workspace, Policy: body.Policy})
	if err != nil {
		return err
	}
	project := start.DataSource.Spec.Project.ID
	if !ident.CanImport(project) {
		return errorf(http.StatusForbidden, "%s may not schedule imports for project %s: it needs the capability import:%s (or import:*), which your sign-in does not grant", ident.Username, project, project)
	}
	start.Requester, start.Via = ident.Username, via
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	id, err := s.schedules.CreateSchedule(ctx, requests.CreateSchedule{ID: body.ID, Cron: body.Cron, Note: body.Note, Import: start})
	if err != nil {
		return s.scheduleError(body.ID, err)
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	return nil
}

// getSchedule: GET /api/v1/schedules/{id} -> the schedule.
func (s *server) getSchedule(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	sc, err := s.visibleSchedule(r, ident, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sc)
	return nil
}

// pauseSchedule: POST /api/v1/schedules/{id}/pause or /unpause, with an
// optional {"note"} -> {"id", "paused"}.
func (s *server) pauseSchedule(pause bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ident, err := signedIn(r)
		if err != nil {
			return err
		}
		var body noteBody
		if err := decodeBody(w, r, &body, true); err != nil {
			return err
		}
		id := r.PathValue("id")
		verb := "unpause"
		if pause {
			verb = "pause"
		}
		if err := s.managedSchedule(r, ident, id, verb); err != nil {
			return err
		}
		ctx, cancel := s.serviceContext(r)
		defer cancel()
		if pause {
			err = s.schedules.PauseSchedule(ctx, id, ident.Username, body.Note)
		} else {
			err = s.schedules.UnpauseSchedule(ctx, id, ident.Username, body.Note)
		}
		if err != nil {
			return s.scheduleError(id, err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "paused": pause})
		return nil
	}
}

// deleteSchedule: DELETE /api/v1/schedules/{id} -> {"id", "deleted"}.
func (s *server) deleteSchedule(w http.ResponseWriter, r *http.Request) error {
	ident, err := signedIn(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := s.managedSchedule(r, ident, id, "delete"); err != nil {
		return err
	}
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	if err := s.schedules.DeleteSchedule(ctx, id); err != nil {
		return s.scheduleError(id, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

// visibleSchedule fetches a schedule the caller may see; a missing one and
// one they may not see answer alike.
func (s *server) visibleSchedule(r *http.Request, ident *auth.Identity, id string) (requests.ScheduleSummary, error) {
	ctx, cancel := s.serviceContext(r)
	defer cancel()
	sc, err := s.schedules.Schedule(ctx, id)
	if err != nil {
		return sc, s.scheduleError(id, err)
	}
	if !canSeeSchedule(ident, sc.Project) {
		return requests.ScheduleSummary{}, scheduleNotFound(id)
	}
	return sc, nil
}

// managedSchedule checks that the caller may change the schedule: 404 if
// they may not see it, 403 if they may see but not manage it.
func (s *server) managedSchedule(r *http.Request, ident *auth.Identity, id, verb string) error {
	sc, err := s.visibleSchedule(r, ident, id)
	if err != nil {
		return err
	}
	if !ident.CanImport(sc.Project) {
		return errorf(http.StatusForbidden, "%s may not %s schedule %s: it needs the capability import:%s (or import:*), which your sign-in does not grant", ident.Username, verb, id, sc.Project)
	}
	return nil
}

func scheduleNotFound(id string) *apiError {
	return errorf(http.StatusNotFound, "no import schedule %q: check the id (GET %s/schedules lists the schedules you can see)", id, apiPrefix)
}

// scheduleError turns the requests package's errors about schedules into
// answers.
func (s *server) scheduleError(id string, err error) error {
	if errors.Is(err, requests.ErrNotFound) {
		return scheduleNotFound(id)
	}
	return s.serviceError(id, err)
}
