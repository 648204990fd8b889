package app

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/wasmta/wasmta/host/config"
)

// checkPlaces checks what the config asks of this machine before anything is opened: every
// listen address is one of its addresses, and every directory the server writes exists or can
// be created. New and Check both run it first, so `wasmta config check` fails on these exactly
// as `wasmta serve` does, with the same message, and serve fails before it opens anything.
// Neither binds a configured port nor creates a directory: a check must work beside a
// running server and leave nothing behind.
func checkPlaces(cfg *config.Config) error {
	if err := checkListenAddrs(cfg); err != nil {
		return err
	}
	return checkDirs(cfg)
}

// checkListenAddrs binds each specific listen address on port 0 and lets go at once: an
// address that is not on this machine fails as its real port would ("cannot assign requested
// address"), while a port a running server holds does not.
func checkListenAddrs(cfg *config.Config) error {
	done := map[netip.Addr]bool{}
	for _, l := range cfg.ListenAddrs() {
		ap, err := netip.ParseAddrPort(l.Addr)
		if err != nil || ap.Addr().IsUnspecified() || done[ap.Addr()] {
			continue // bad syntax was refused by config.Parse; a wildcard is always there
		}
		done[ap.Addr()] = true
		ln, err := net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), 0).String())
		if err != nil {
			return fmt.Errorf("configuration key %s: %s: %s is not an address of this machine (%v)", l.Key, l.Addr, ap.Addr(), err)
		}
		ln.Close()
	}
	return nil
}

// checkDirs checks the directories serve creates or writes: spool.path, logs.dir (unless
// records go to stdout), the webhook's queue (with a webhook) and wasm_cache (with plugins).
func checkDirs(cfg *config.Config) error {
	dirs := []struct{ key, path string }{{"spool.path", cfg.Spool.Path}}
	if !cfg.Logs.Stdout {
		dirs = append(dirs, struct{ key, path string }{"logs.dir", cfg.Logs.Dir})
	}
	if w := cfg.Logs.Webhook; w.URL != "" {
		d := w.Dir
		if d == "" {
			d = filepath.Join(cfg.Logs.Dir, "webhook")
		}
		dirs = append(dirs, struct{ key, path string }{"logs.webhook.dir", d})
	}
	if len(cfg.Plugins) > 0 && cfg.WasmCache != "" {
		dirs = append(dirs, struct{ key, path string }{"wasm_cache", cfg.WasmCache})
	}
	for _, d := range dirs {
		if err := usableDir(d.path); err != nil {
			return fmt.Errorf("configuration key %s: %s: %w", d.key, d.path, err)
		}
	}
	return nil
}

// usableDir reports whether dir is a directory the server can write in, or can be created:
// its nearest existing ancestor is a directory it can write in.
func usableDir(dir string) error {
	for p := filepath.Clean(dir); ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		case err == nil:
			if err := unix.Access(p, unix.W_OK|unix.X_OK); err != nil {
				return fmt.Errorf("cannot write in %s: %w", p, err)
			}
			return nil
		case !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return err
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil
		}
		p = parent
	}
}
