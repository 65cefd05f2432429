"""A writer for the "newc" cpio format, the one the Linux kernel unpacks as an initramfs.

Each entry: a 110-byte ASCII header (magic 070701, then 13 eight-digit hex fields), the NUL-ended
name padded to 4 bytes, the data padded to 4 bytes; the archive ends with "TRAILER!!!".
(Documentation/driver-api/early-userspace/buffer-format.rst.)
"""
import os
import stat


class CpioWriter:
    def __init__(self, fileobj):
        self._out = fileobj
        self._ino = 1
        self._dirs = set()

    def _entry(self, name, mode, data=b"", mtime=0):
        name = name.strip("/")
        namez = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 1, mtime, len(data), 0, 0, 0, 0, len(namez), 0]
        self._ino += 1
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._out.write(header + namez + b"\0" * (-(110 + len(namez)) % 4))
        self._out.write(data + b"\0" * (-len(data) % 4))

    def mkdir(self, name, mode=0o755):
        """A directory and, first, any of its parents not yet written."""
        name = name.strip("/")
        if not name or name in self._dirs:
            return
        self.mkdir(os.path.dirname(name))
        self._dirs.add(name)
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name, data, mode=0o644):
        self.mkdir(os.path.dirname(name.strip("/")))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self.mkdir(os.path.dirname(name.strip("/")))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def add_tree(self, src, dest, skip=lambda relpath: False):
        """Copy the directory tree at `src` (files, symlinks, directories) to `dest` in the archive."""
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            rel = "" if rel == "." else rel
            dirnames[:] = sorted(d for d in dirnames if not skip(os.path.join(rel, d)))
            self.mkdir(os.path.join(dest, rel))
            for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
                relpath = os.path.join(rel, name)
                if skip(relpath):
                    continue
                path = os.path.join(dirpath, name)
                target = os.path.join(dest, relpath)
                if os.path.islink(path):
                    self.symlink(target, os.readlink(path))
                elif os.path.isfile(path):
                    with open(path, "rb") as f:
                        self.file(target, f.read(), os.stat(path).st_mode & 0o7777)

    def close(self):
        self._entry("TRAILER!!!", 0)
        # Pad to 512 bytes as cpio(1) does; the kernel does not need it, but tools expect it.
        self._out.write(b"\0" * (-self._out.tell() % 512))
