package logs

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// FileName is the live log file under [logs] dir. Rotated files are named
// wasmta-<UTC time>.jsonl (then .jsonl.gz), so they sort by age and never collide with it.
const FileName = "wasmta.jsonl"

const (
	backupPrefix = "wasmta-"
	backupExt    = ".jsonl"
	gzExt        = ".gz"
	tmpExt       = ".tmp"
	// backupTime sorts lexically in time order; nanoseconds make a collision unlikely and the
	// existence check in rotate makes it impossible (a rename never replaces a backup).
	backupTime = "20060102T150405.000000000Z"
)

// FileOptions configure a rotating log file.
type FileOptions struct {
	Dir string
	// MaxSize rotates the file before a write that would take it past this many bytes;
	// 0 never rotates by size. A single record larger than MaxSize still goes into a file of
	// its own: records are never split.
	MaxSize int64
	// Daily rotates at the first write after midnight UTC, so each file holds one day.
	Daily bool
	// Compress gzips rotated files in the background.
	Compress bool
	// MaxBackups deletes the oldest rotated files beyond this many; 0 keeps them all.
	MaxBackups int
	Diag       *slog.Logger
	Now        func() time.Time
}

// File is the log file: one stable name (FileName) appended to across restarts, so `tail -F`
// follows it; rotated by size or day into wasmta-<time>.jsonl; reopened on request after an
// outside tool (logrotate) renamed it. Every Write is one write(2) on an O_APPEND descriptor,
// under a mutex that rotation also holds, so a record is wholly in one file: none is lost or
// written twice across a rotation.
type File struct {
	opt  FileOptions
	path string

	mu   sync.Mutex
	f    *os.File
	size int64
	day  string // UTC date of the current file's first record (Daily)

	gzMu   sync.Mutex // one compression at a time, in rotation order
	gzWait sync.WaitGroup
}

// OpenFile opens (or creates, mode 0640) dir/wasmta.jsonl for appending. Rotated files that a
// crash left uncompressed, or half-compressed, are finished in the background.
func OpenFile(opt FileOptions) (*File, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Diag == nil {
		opt.Diag = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opt.Dir, 0o750); err != nil {
		return nil, err
	}
	l := &File{opt: opt, path: filepath.Join(opt.Dir, FileName)}
	if err := l.open(); err != nil {
		return nil, err
	}
	l.recover()
	return l, nil
}

// Path is the live file.
func (l *File) Path() string { return l.path }

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	l.day = ""
	if l.size > 0 {
		// The file's last write tells which day it is collecting.
		l.day = st.ModTime().UTC().Format(time.DateOnly)
	}
	return nil
}

// Write appends p (one whole record) with one write(2), rotating first when p would take the
// file past MaxSize or when the day changed.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	today := ""
	if l.opt.Daily {
		today = l.opt.Now().UTC().Format(time.DateOnly)
	}
	if l.size > 0 && ((l.opt.MaxSize > 0 && l.size+int64(len(p)) > l.opt.MaxSize) || (l.opt.Daily && today != l.day)) {
		if err := l.rotate(); err != nil {
			// Keep writing to the file we have: a record late in the wrong file beats a lost one.
			l.opt.Diag.Error("logs: rotation failed; still writing to the current file", "file", l.path, "err", err)
		}
	}
	n, err := l.f.Write(p)
	if err != nil && n > 0 {
		// Part of the record went in (a full disk). Left there it would run into the next
		// record: one broken line for a log shipper, and both records lost to it. Cut it off.
		if terr := l.f.Truncate(l.size); terr == nil {
			n = 0
		}
	}
	l.size += int64(n)
	if l.size > 0 && l.day == "" {
		l.day = today
		if l.day == "" {
			l.day = l.opt.Now().UTC().Format(time.DateOnly)
		}
	}
	return n, err
}

// rotate renames the live file to a backup name and opens a new one. Caller holds mu.
func (l *File) rotate() error {
	name := filepath.Join(l.opt.Dir, backupPrefix+l.opt.Now().UTC().Format(backupTime))
	backup := name + backupExt
	for i := 1; exists(backup) || exists(backup+gzExt); i++ {
		backup = fmt.Sprintf("%s-%d%s", name, i, backupExt)
	}
	if err := os.Rename(l.path, backup); err != nil {
		return err
	}
	old := l.f
	if err := l.open(); err != nil {
		// Nothing new to write to: put the file back so writes go on.
		if rerr := os.Rename(backup, l.path); rerr != nil {
			l.opt.Diag.Error("logs: cannot restore the log file after a failed rotation", "file", backup, "err", rerr)
		}
		return err
	}
	old.Close()
	l.afterRotate(backup)
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Rotate rotates now (when the file holds anything).
func (l *File) Rotate() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	if l.size == 0 {
		return nil
	}
	return l.rotate()
}

// Reopen closes the file and opens FileName again, creating it when an outside tool moved it
// away (logrotate's "rename, then signal"). Writes between the rename and Reopen went to the
// moved file; none is lost. A file nobody moved is simply reopened.
func (l *File) Reopen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	old := l.f
	if err := l.open(); err != nil {
		l.f = old // keep writing where we were
		return err
	}
	old.Close()
	return nil
}

// Close syncs and closes the file, then waits for compressions in progress.
func (l *File) Close() error {
	l.mu.Lock()
	var err error
	if l.f != nil {
		_ = l.f.Sync()
		err = l.f.Close()
		l.f = nil
	}
	l.mu.Unlock()
	l.gzWait.Wait()
	return err
}

// afterRotate compresses the new backup and prunes old ones, in the background.
func (l *File) afterRotate(backup string) {
	l.gzWait.Add(1)
	go func() {
		defer l.gzWait.Done()
		l.gzMu.Lock()
		defer l.gzMu.Unlock()
		if backup != "" && l.opt.Compress {
			if err := compress(backup); err != nil {
				l.opt.Diag.Error("logs: compressing a rotated file failed; it stays uncompressed", "file", backup, "err", err)
			}
		}
		l.prune()
	}()
}

// recover finishes what a crash interrupted: a .gz.tmp is a compression cut short (its
// source is still there), a backup beside a complete .gz (renamed into place only after
// fsync) was already compressed, any other backup still needs compressing.
func (l *File) recover() {
	ents, err := os.ReadDir(l.opt.Dir)
	if err != nil {
		return
	}
	var todo []string
	for _, e := range ents {
		n := e.Name()
		full := filepath.Join(l.opt.Dir, n)
		switch {
		case !strings.HasPrefix(n, backupPrefix):
		case strings.HasSuffix(n, gzExt+tmpExt):
			os.Remove(full)
		case strings.HasSuffix(n, backupExt):
			if exists(full + gzExt) {
				os.Remove(full)
			} else if l.opt.Compress {
				todo = append(todo, full)
			}
		}
	}
	for _, b := range todo {
		l.afterRotate(b)
	}
	if len(todo) == 0 && l.opt.MaxBackups > 0 {
		l.afterRotate("")
	}
}

// prune deletes the oldest backups beyond MaxBackups.
func (l *File) prune() {
	if l.opt.MaxBackups <= 0 {
		return
	}
	ents, err := os.ReadDir(l.opt.Dir)
	if err != nil {
		return
	}
	var backups []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, backupPrefix) && (strings.HasSuffix(n, backupExt) || strings.HasSuffix(n, backupExt+gzExt)) {
			backups = append(backups, n)
		}
	}
	slices.Sort(backups) // the names start with the rotation time
	for len(backups) > l.opt.MaxBackups {
		os.Remove(filepath.Join(l.opt.Dir, backups[0]))
		backups = backups[1:]
	}
}

// compress writes src.gz through a temporary file that is fsynced and renamed into place,
// then removes src: at every instant one complete copy of the records exists.
func compress(src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := src + gzExt + tmpExt
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(out)
	_, err = io.Copy(zw, in)
	err = errors.Join(err, zw.Close())
	if err == nil {
		err = out.Sync()
	}
	err = errors.Join(err, out.Close())
	if err == nil {
		err = os.Rename(tmp, src+gzExt)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	syncDir(filepath.Dir(src))
	return os.Remove(src)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
