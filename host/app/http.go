package app

import (
	"context"

	"github.com/wasmta/wasmta/host/httpapi"
)

// newHTTP builds the HTTP API server from [http], or nil when [http] listen is "".
func (a *App) newHTTP() *httpapi.Server {
	c := a.cfg.HTTP
	if c.Listen == "" {
		return nil
	}
	return httpapi.New(httpapi.Options{
		Listen:            c.Listen,
		Token:             c.Token,
		InjectToken:       c.InjectToken,
		MaxRequestSize:    int64(c.MaxRequestSize),
		ReadHeaderTimeout: c.ReadHeaderTimeout.D(),
		ReadTimeout:       c.ReadTimeout.D(),
		WriteTimeout:      c.WriteTimeout.D(),
		IdleTimeout:       c.IdleTimeout.D(),
		Hostname:          a.cfg.Hostname,
		MaxMessageSize:    int64(a.cfg.SMTP.MaxMessageSize),
		Receiver:          a.queue,
		Policy:            a.chain, // like SMTP: plugins added by a reload apply at once
		Signer:            a.dkim,
		Guard:             a.spool, // 503 "disk is too full" below spool.min_free, as SMTP's 452
		Admin:             a.queue,
		Control:           a.httpControl(), // the control socket's code path
		Fleet:             a.httpFleet(),   // nil outside a cluster
		Ready:             a.Ready,
		Log:               a.logs,
		Diag:              a.diag,
	})
}

// startHTTP binds and serves the HTTP API; a taken port fails start-up like SMTP's.
func (a *App) startHTTP() error {
	if a.http == nil {
		return nil
	}
	if err := a.http.Listen(); err != nil {
		return err
	}
	a.http.Serve()
	return nil
}

// stopHTTP stops accepting requests and lets injections in progress finish and be answered.
func (a *App) stopHTTP(ctx context.Context) {
	if a.http != nil {
		a.http.Shutdown(ctx)
	}
}

// HTTPAddr is the bound HTTP API address, "" when disabled.
func (a *App) HTTPAddr() string {
	if a.http == nil || a.http.Addr() == nil {
		return ""
	}
	return a.http.Addr().String()
}
