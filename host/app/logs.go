package app

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/wasmta/wasmta/host/classify"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/logs/webhook"
)

// bounceRules loads logs.bounce_rules (the shipped rules when unset); Check runs it too.
func bounceRules(cfg *config.Config) (*classify.Classifier, error) {
	rules, err := classify.Load(cfg.Logs.BounceRules)
	if err != nil {
		return nil, fmt.Errorf("configuration key logs.bounce_rules: %w", err)
	}
	return rules, nil
}

// openLogs builds the log writer of [logs] and, with [logs.webhook] url, the webhook's queue
// (started by Start, so nothing is sent before the relay serves).
func (a *App) openLogs(cfg *config.Config) error {
	lc := cfg.Logs
	rules, err := bounceRules(cfg)
	if err != nil {
		return err
	}
	opt := logs.Options{
		File: logs.FileOptions{
			Dir:        lc.Dir,
			MaxSize:    int64(lc.MaxSize),
			Daily:      lc.RotateDaily,
			Compress:   lc.Compress,
			MaxBackups: lc.MaxBackups,
			Diag:       a.diag,
		},
		Classifier: rules,
	}
	if lc.Stdout {
		opt.Stdout = os.Stdout
	}
	if w := lc.Webhook; w.URL != "" {
		dir := w.Dir
		if dir == "" {
			dir = filepath.Join(lc.Dir, "webhook")
		}
		a.logHook, err = webhook.Open(webhook.Options{
			Dir:              dir,
			URL:              w.URL,
			BatchSize:        w.BatchSize,
			Timeout:          w.Timeout.D(),
			Headers:          w.Headers,
			BearerToken:      w.BearerToken,
			RetryInterval:    w.RetryInterval.D(),
			MaxRetryInterval: w.MaxRetryInterval.D(),
			MaxBacklog:       int64(w.MaxBacklog),
			Diag:             a.diag,
		})
		if err != nil {
			return fmt.Errorf("logs.webhook: %w", err)
		}
		opt.Tee = a.logHook
	}
	if a.logs, err = logs.New(opt); err != nil {
		a.closeLogs()
		return fmt.Errorf("logs: %w", err)
	}
	a.logs.SetDiag(a.diag)
	return nil
}

// ReopenLogs reopens the log file after an outside tool (logrotate) moved it (SIGUSR1).
func (a *App) ReopenLogs() {
	if err := a.logs.Reopen(); err != nil {
		a.diag.Error("logs: reopen failed; still writing to the old file", "err", err)
		return
	}
	a.diag.Info("logs reopened", "file", a.logs.Path())
}

// closeLogs closes the writer, then the webhook's queue (which no longer gets records).
func (a *App) closeLogs() {
	if a.logs != nil {
		a.logs.Close()
	}
	if a.logHook != nil {
		a.logHook.Close()
	}
}
