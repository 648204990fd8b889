package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of size bytes on dir (created if needed) and unmounts it when the
// test ends. It needs root; when mounting is impossible the test fails, it does not skip: a
// disk-full test that silently does not run proves nothing.
func MountTmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount tmpfs on %s (the test needs root): %v\n%s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
}

// FreeBytes is the space an unprivileged writer can still use on the filesystem holding path.
func FreeBytes(t testing.TB, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// Ballast fills the filesystem holding dir with the file dir/name until about leave bytes stay
// free (leave 0: until writes fail with ENOSPC), and returns the file's path. Calling it again
// with the same name grows or shrinks the file to the new target.
func Ballast(t testing.TB, dir, name string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size() + FreeBytes(t, dir) - leave
	if size < 0 {
		size = 0
	}
	if size < fi.Size() {
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
	} else if err := syscall.Fallocate(int(f.Fd()), 0, 0, size); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("fallocate %s: %v", path, err)
	}
	if leave == 0 { // take the last pages too, whatever fallocate left
		if _, err := f.Seek(0, 2); err != nil {
			t.Fatal(err)
		}
		page := make([]byte, 4096)
		for {
			if _, err := f.Write(page); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
	return path
}
