package app

import (
	"errors"

	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/httpapi"
)

// RunControl runs one control command ("reload" or "status") and reports the plugins, queue
// and spool as they are after it. The control socket and the HTTP API both call it, so
// `wasmta plugin reload` and POST /api/admin/plugin/reload/v1 do exactly the same thing;
// reason names the caller in the PluginReload log record.
func (a *App) RunControl(cmd, reason string) control.Response {
	resp := control.Response{OK: true}
	switch cmd {
	case control.CmdReload:
		res, err := a.Reload(reason)
		resp.Results = res
		if err != nil {
			resp.OK, resp.Error = false, err.Error()
		}
	case control.CmdStatus:
	default:
		resp = control.Response{Error: "unknown command " + cmd + " (reload, status)"}
	}
	for _, s := range a.Status() {
		resp.Plugins = append(resp.Plugins, control.PluginStatus(s))
	}
	st := a.queue.Stats()
	sp := a.spool.Stats()
	resp.Spool = control.SpoolCounts{FreeBytes: sp.Free, MinFreeBytes: sp.MinFree, BelowReserve: sp.BelowReserve, SpaceRefusals: sp.SpaceRefusals}
	resp.Queue = control.QueueCounts{Queued: st.Queued, Received: st.Received, Delivered: st.Delivered, Transient: st.Transient,
		Bounced: st.Bounced, Expired: st.Expired, DeleteFailures: st.DeleteFailures, Panics: st.Panics, AdminBounced: st.AdminBounced}
	return resp
}

// httpControl adapts RunControl to the HTTP API.
func (a *App) httpControl() httpapi.Control {
	return func(cmd, reason string) (any, bool) {
		r := a.RunControl(cmd, reason)
		return r, r.OK
	}
}

// Ready is nil while the relay takes mail; otherwise it says why not (the readiness probe's
// 503): starting (spool recovery), shutting down, the spool unhealthy after a failed write (a commit or its sync), or
// the spool below its free-space reserve.
func (a *App) Ready() error {
	switch {
	case !a.serving.Load():
		return errors.New("not serving: starting or shutting down")
	case a.spool.Health() != nil:
		return errors.New("spool unhealthy since a failed write: new mail is refused and deliveries are stopped until a restart")
	case a.spool.Stats().BelowReserve:
		return errors.New("spool below its free-space reserve (spool.min_free): new mail is refused")
	}
	return nil
}
