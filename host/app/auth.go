package app

import (
	"fmt"

	"github.com/wasmta/wasmta/host/auth"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/smtpserver"
)

// openUsers loads smtp.auth_users_file; nil when none is configured.
func openUsers(cfg *config.Config) (*auth.Store, error) {
	if cfg.SMTP.AuthUsersFile == "" {
		return nil, nil
	}
	s, err := auth.Open(cfg.SMTP.AuthUsersFile)
	if err != nil {
		return nil, fmt.Errorf("configuration key smtp.auth_users_file: %w", err)
	}
	return s, nil
}

// authenticator keeps a nil store a nil interface (no AUTH).
func authenticator(s *auth.Store) smtpserver.Authenticator {
	if s == nil {
		return nil
	}
	return s
}

// reloadUsers re-reads the users file on a reload (SIGHUP, wasmta plugin reload); a bad file
// leaves the users in use. Naming another file in the config needs a restart.
func (a *App) reloadUsers(reason string) error {
	if a.users == nil {
		return nil
	}
	u, err := a.users.Reload()
	if err != nil {
		a.diag.Error("reload: users file refused; the previous users stay", "reason", reason, "err", err)
		return fmt.Errorf("configuration key smtp.auth_users_file: %w", err)
	}
	a.diag.Info("users file reloaded", "file", a.users.Path(), "users", u.Len(), "reason", reason)
	return nil
}
