package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// newDev sets up dev mode and returns the session key: the secret named by
// SessionKeyKey when set, else random for this process (sessions end when
// the API restarts).
func (a *Authenticator) newDev(ctx context.Context, cfg Config, o Options) ([]byte, error) {
	if cfg.OIDC.Issuer != "" {
		return nil, fmt.Errorf("api.auth.mode is dev but api.auth.oidc.issuer is set (%q): dev mode lets anyone on this machine act as any user in directory.users and must never stand in for a real identity provider; remove api.auth.oidc.issuer for development, or set api.auth.mode: oidc", cfg.OIDC.Issuer)
	}
	if o.ListenAddr == "" {
		return nil, errors.New("api.auth.mode is dev but the API's listen address is unknown: dev mode is only allowed on loopback; set api.listen to 127.0.0.1:PORT")
	}
	if !isLoopback(o.ListenAddr) {
		return nil, fmt.Errorf("api.auth.mode is dev but the API listens on %q, which is not loopback: dev mode lets anyone who can reach the API act as any user, so it only runs on 127.0.0.1, ::1 or localhost; set api.listen to 127.0.0.1:PORT, or use api.auth.mode: oidc", o.ListenAddr)
	}
	if len(o.DevUsers) == 0 {
		return nil, errors.New("api.auth.mode is dev but directory.users is empty: list the development users and their roles there (for example rita: [researcher])")
	}
	a.devUsers = map[string][]string{}
	for name, roles := range o.DevUsers {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "\r\n") {
			return nil, fmt.Errorf("directory.users: the user name %q is not usable in dev mode: use a plain name such as rita", name)
		}
		a.devUsers[name] = slices.Clone(roles)
	}
	var key []byte
	if cfg.SessionKeyKey != "" {
		var err error
		if key, err = sessionKey(ctx, cfg, o); err != nil {
			return nil, err
		}
	} else {
		key = make([]byte, 32)
		rand.Read(key)
	}
	for _, line := range []string{
		"****************************************************************",
		"WARNING: Airlock's API is running in DEV sign-in mode.",
		"Anyone who can reach " + o.ListenAddr + " can act as ANY user in directory.users",
		"(pick one at /auth/dev, or send the " + DevUserHeader + " header).",
		"There is no password and no identity provider. For development only:",
		"never use api.auth.mode: dev for real data.",
		"****************************************************************",
	} {
		a.log.Warn(line)
	}
	return key, nil
}

// devClaims returns the dev user name's identity claims.
func (a *Authenticator) devClaims(name string) (identityClaims, bool) {
	roles, ok := a.devUsers[name]
	if !ok {
		return identityClaims{}, false
	}
	return identityClaims{Subject: "dev:" + name, Username: name, Name: name, Roles: uniqueSorted(roles), Groups: []string{}}, true
}

type devUserRow struct {
	Name  string
	Roles []string
}

func (a *Authenticator) devPage(w http.ResponseWriter, r *http.Request) {
	next, err := localPath(r.URL.Query().Get("next"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "Sign-in refused", err.Error())
		return
	}
	var rows []devUserRow
	for _, name := range sortedNames(a.devUsers) {
		rows = append(rows, devUserRow{Name: name, Roles: uniqueSorted(a.devUsers[name])})
	}
	render(w, http.StatusOK, devTemplate, map[string]any{"Next": next, "Users": rows})
}

func (a *Authenticator) devSignIn(w http.ResponseWriter, r *http.Request) {
	next, err := localPath(r.PostFormValue("next"))
	if err != nil {
		errorPage(w, http.StatusBadRequest, "Sign-in refused", err.Error())
		return
	}
	name := r.PostFormValue("user")
	ic, ok := a.devClaims(name)
	if !ok {
		errorPage(w, http.StatusBadRequest, "Sign-in refused", fmt.Sprintf("%q is not a user in directory.users; pick one of the listed users.", name))
		return
	}
	a.startSession(w, r, ic, next)
}

func sortedNames(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
