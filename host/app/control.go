package app

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wasmta/wasmta/host/control"
)

// startControl listens on the local control socket. It is a Unix socket with mode 0600: only
// the relay's own user (and root) can reload policy; nothing listens on the network.

// errControlInUse: another server answers on the control socket. Serving beside it would send
// `wasmta plugin reload --config <ours>` to that other server, so start-up fails instead.
var errControlInUse = errors.New("in use by another running wasmta (set control_socket to a path of this server's own)")

func (a *App) startControl() error {
	path := a.cfg.ControlSocket
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: %w", path, errControlInUse)
	}
	_ = os.Remove(path) // stale, from a crash
	l, err := listenPrivate(path)
	if err != nil {
		return err
	}
	a.control = l
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go a.serveControl(c)
		}
	}()
	return nil
}

// listenPrivate binds a Unix socket at path that no other user can ever connect to. Binding at
// path and chmod-ing afterwards leaves a window in which the socket carries the process umask
// (0777 &^ umask: with umask 0 anyone may connect); instead the socket is bound inside a fresh
// 0700 directory (nobody else can reach it there), set to 0600, and only then renamed into
// place, so it appears at path already private. The listener keeps working across the rename
// (it is bound to the inode); closing it removes path.
func listenPrivate(path string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".control-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // it would unlink tmp, which is gone; we remove path ourselves
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, err
	}
	return &unlinkListener{UnixListener: ul, path: path}, nil
}

// unlinkListener removes its socket file when closed.
type unlinkListener struct {
	*net.UnixListener
	path string
}

func (l *unlinkListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

func (a *App) serveControl(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	line, err := bufio.NewReader(io.LimitReader(c, control.MaxRequestSize+1)).ReadBytes('\n')
	if len(line) > control.MaxRequestSize {
		err = fmt.Errorf("request longer than %d bytes", control.MaxRequestSize)
	}
	var req control.Request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp control.Response
	if err != nil {
		resp = a.RunControl(control.CmdStatus, "")
		resp.OK, resp.Error = false, "bad request: "+err.Error()
	} else {
		resp = a.RunControl(req.Cmd, "wasmta plugin "+req.Cmd)
	}
	_ = json.NewEncoder(c).Encode(resp)
}
