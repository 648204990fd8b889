package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/control"
	"github.com/wasmta/wasmta/host/dkim"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/wiring"
)

// Reload applies plugin changes without a restart: it re-reads the config file (if the server
// was started with one), then for each configured plugin builds a new generation when its file,
// [plugins.config] or limits changed, loads plugins added to the config and retires removed ones.
// Nothing serves until it passed every load-time check; a refused version leaves the old one
// serving. Every new version is built first, then all are swapped in at once, so that no
// message is handled by the new version of one plugin and the old version of another. Cached queue configs are dropped when anything changed, so queued mail follows the
// new policy at its next attempt. Other settings still need a restart; the changed ones are
// named in a warning. The error summarizes
// every refusal.
func (a *App) Reload(reason string) ([]control.ReloadResult, error) {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	if a.stopping {
		return nil, errors.New("shutting down")
	}
	usersErr := a.reloadUsers(reason)
	cfgs := a.pluginCfgs
	var keys *dkim.Keys // the new [[dkim]] keys, put in use with the plugins below
	if a.configPath != "" {
		c, err := config.Load(a.configPath)
		if err == nil {
			keys, err = loadDKIM(c) // a bad key refuses the whole new config
		}
		if err != nil {
			a.diag.Error("reload: configuration refused; plugins unchanged", "reason", reason, "err", err)
			a.logs.LogPluginReload(logs.PluginReload{Path: a.configPath, Error: err.Error(), Reason: reason})
			return nil, errors.Join(err, usersErr)
		}
		cfgs = c.Plugins
		if changed := config.ChangedKeys(a.cfg, c); len(changed) > 0 {
			// Accepted, but not applied: say so rather than let the operator believe it.
			a.diag.Warn("reload: these settings changed in the config file but apply only after a restart", "keys", strings.Join(changed, ","), "reason", reason)
		}
	}
	if len(cfgs) > 0 && a.host == nil {
		h, err := plugin.NewHost(a.cfg.WasmCache, a.diag)
		if err != nil {
			return nil, err
		}
		h.SetDKIMKeys(a.dkim)
		a.host = h
	}
	ctx := context.Background()
	current := a.chain.Plugins()
	used := make([]bool, len(current))
	var next []*plugin.Plugin
	var gens []*plugin.Generation // next[i]'s new generation, nil to keep the one serving
	var results []control.ReloadResult
	var errs []error
	changed := false
	for i, pc := range cfgs {
		var p *plugin.Plugin
		for j, q := range current {
			if !used[j] && samePath(q.Status().Path, pc.Path) {
				p, used[j] = q, true
				break
			}
		}
		spec, err := wiring.PluginSpec(pc)
		if err != nil {
			// Refused like a broken module: the current version (if any) keeps serving.
			err = fmt.Errorf("plugins[%d].config: %w", i, err)
			errs = append(errs, err)
			r := control.ReloadResult{Plugin: filepath.Base(pc.Path), Path: pc.Path, Error: err.Error()}
			if p != nil {
				next, gens = append(next, p), append(gens, nil)
				r.Generation = p.Generation().ID
			}
			results = append(results, r)
			continue
		}
		if p == nil { // a new entry
			np, err := a.host.Load(ctx, spec)
			r := control.ReloadResult{Plugin: filepath.Base(pc.Path), Path: pc.Path}
			if err != nil {
				err = fmt.Errorf("plugins[%d]: %w", i, err) // which entry: two may share a file name
				r.Error = err.Error()
				errs = append(errs, err)
			} else {
				next, gens = append(next, np), append(gens, nil)
				r.Generation, r.Changed, changed = np.Generation().ID, true, true
			}
			results = append(results, r)
			continue
		}
		before := p.Generation().ID
		// Built now, swapped in below with every other change (Chain.Update).
		g, ch, err := p.Prepare(ctx, spec)
		next = append(next, p)
		gens = append(gens, nil)
		r := control.ReloadResult{Plugin: p.Name(), Path: pc.Path, Generation: g.ID, Changed: ch}
		if ch {
			gens[len(gens)-1] = g
			r.Previous, changed = before, true
		}
		if err != nil {
			err = fmt.Errorf("plugins[%d]: %w", i, err)
			r.Error = err.Error()
			errs = append(errs, err)
		}
		results = append(results, r)
	}
	var removed []*plugin.Plugin
	for j, q := range current {
		if !used[j] {
			removed = append(removed, q)
			changed = true
			results = append(results, control.ReloadResult{Plugin: q.Name(), Path: q.Status().Path, Previous: q.Generation().ID, Removed: true, Changed: true})
		}
	}
	a.pluginCfgs = cfgs
	// One swap for the whole chain: no message meets a new plugin beside an old one.
	// The DKIM keys change in the same swap: a plugin renamed with its key must not meet the
	// new keys in its old version (dkim_sign of a name that is gone fails the hook: 451).
	a.chain.UpdateWith(next, gens, func() {
		if keys != nil {
			a.dkim.Set(keys)
		}
	})
	for _, q := range removed {
		q.Remove(ctx) // calls that still hold the old list skip it
	}
	if changed {
		a.queue.InvalidateConfigs()
	}
	for _, r := range results {
		if r.Changed || r.Error != "" {
			a.logs.LogPluginReload(logs.PluginReload{Plugin: r.Plugin, Path: r.Path, Generation: r.Generation, Previous: r.Previous, Error: r.Error, Reason: reason})
		}
		switch {
		case r.Error != "":
			a.diag.Error("plugin reload refused; the previous version keeps serving", "plugin", r.Plugin, "reason", reason, "err", r.Error)
		case r.Changed:
			a.diag.Info("plugin reloaded", "plugin", r.Plugin, "generation", r.Generation, "previous", r.Previous, "removed", r.Removed, "reason", reason)
		}
	}
	a.watchPaths()
	return results, errors.Join(append(errs, usersErr)...)
}

func samePath(a, b string) bool {
	x, err1 := filepath.Abs(a)
	y, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && x == y
}

// Status lists the plugins serving now.
func (a *App) Status() []plugin.Status {
	var out []plugin.Status
	for _, p := range a.chain.Plugins() {
		out = append(out, p.Status())
	}
	return out
}

// reloadDebounce gathers the burst of events one file replacement makes (editors write a temp
// file, rename it, touch attributes) into one reload.
const reloadDebounce = 20 * time.Millisecond

// watch reloads when a plugin file or the config file changes on disk. It watches their
// directories, not the files, so a file replaced by rename (mv, editors) is seen too.
func (a *App) startWatcher() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	a.watcher = w
	a.watchPaths()
	go func() {
		var timer *time.Timer
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !a.isWatched(ev.Name) {
					continue
				}
				if timer == nil {
					timer = time.AfterFunc(reloadDebounce, func() { _, _ = a.Reload("file change") })
				} else {
					timer.Reset(reloadDebounce)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				a.diag.Warn("file watcher", "err", err)
			}
		}
	}()
	return nil
}

// watchPaths (re)computes the watched files and directories from the current config.
func (a *App) watchPaths() {
	if a.watcher == nil {
		return
	}
	files := map[string]bool{}
	if a.configPath != "" {
		files[abs(a.configPath)] = true
	}
	for _, pc := range a.pluginCfgs {
		files[abs(pc.Path)] = true
	}
	// A path that is a symlink is also watched where it leads (an edit there is a change), and
	// what it resolves to is remembered (a symlink swapped on the way is one too: isWatched).
	resolved := map[string]string{}
	for f := range files {
		if r, err := filepath.EvalSymlinks(f); err == nil && r != f {
			resolved[f] = r
		}
	}
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	a.watched, a.resolved = files, resolved
	for _, r := range resolved {
		files[r] = true
		// Added each time: the directory of a version is new after each swap, and the watch
		// of one removed meanwhile went with it.
		if err := a.watcher.Add(filepath.Dir(r)); err != nil {
			a.diag.Warn("cannot watch directory; reload with SIGHUP or wasmta plugin reload", "dir", filepath.Dir(r), "err", err)
		}
	}
	for f := range files {
		if isTarget(resolved, f) {
			continue // its directory was added above
		}
		dir := filepath.Dir(f)
		if !a.watchedDirs[dir] {
			if err := a.watcher.Add(dir); err != nil {
				a.diag.Warn("cannot watch directory; reload with SIGHUP or wasmta plugin reload", "dir", dir, "err", err)
				continue
			}
			a.watchedDirs[dir] = true
		}
	}
}

// isTarget reports whether f is what a watched symlink resolves to (its directory is watched
// apart, see watchPaths).
func isTarget(resolved map[string]string, f string) bool {
	for _, r := range resolved {
		if r == f {
			return true
		}
	}
	return false
}

// isWatched reports whether an event for name may have changed a watched file: it names one,
// or a watched symlink now leads elsewhere.
func (a *App) isWatched(name string) bool {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	if a.watched[abs(name)] {
		return true
	}
	for f, r := range a.resolved {
		if now, err := filepath.EvalSymlinks(f); err != nil || now != r {
			return true
		}
	}
	return false
}

func abs(p string) string {
	if x, err := filepath.Abs(p); err == nil {
		return x
	}
	return p
}
