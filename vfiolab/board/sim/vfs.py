"""A tiny in-memory filesystem for /sys and /dev: directories, symlinks, attributes, char devices.

Links are stored with absolute targets and shown relative (readlink gives "../../../bus/...", as
sysfs does). Attributes have show() and/or store(bytes) callables; store failures are OSError
with the errno the kernel's store method returns. Errors follow the VFS: ENOENT for a missing
component, ENOTDIR for a file used as a directory, EISDIR for reading a directory, EACCES for a
read of a write-only attribute or a write of a read-only one (kernfs_fop_open), ELOOP for loops.
open() with O_CREAT of a missing sysfs file is EACCES (vfs_create: kernfs cannot create files).
"""
import errno
import posixpath

from .errors import kernel_error


class Dir:
    def __init__(self):
        self.entries = {}


class Link:
    def __init__(self, target):
        self.target = target     # absolute path


class Attr:
    def __init__(self, show=None, store=None):
        self.show = show         # () -> str | bytes
        self.store = store       # (bytes) -> None, raising OSError


class CharDevice:
    def __init__(self, opener):
        self.opener = opener     # (flags) -> file object


def _split(path):
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if not path.startswith("/"):
        raise kernel_error(errno.ENOENT, "the sim board only knows absolute paths", path)
    return [p for p in path.split("/") if p not in ("", ".")]


class Vfs:
    def __init__(self):
        self.root = Dir()

    # --- building -----------------------------------------------------------------------------
    def mkdir(self, path):
        node = self.root
        for name in _split(path):
            node = node.entries.setdefault(name, Dir())
            if not isinstance(node, Dir):
                raise ValueError(f"{path}: {name} is not a directory")
        return node

    def _parent(self, path):
        parent, name = posixpath.split(path.rstrip("/"))
        return self.mkdir(parent), name

    def add(self, path, node):
        parent, name = self._parent(path)
        parent.entries[name] = node
        return node

    def attr(self, path, show=None, store=None):
        return self.add(path, Attr(show, store))

    def link(self, path, target):
        return self.add(path, Link(target))

    def remove(self, path):
        parent, name = self._parent(path)
        parent.entries.pop(name, None)

    def exists(self, path):
        try:
            self.lookup(path)
            return True
        except OSError:
            return False

    # --- lookup -------------------------------------------------------------------------------
    def lookup(self, path, follow=True):
        """(node, real absolute path) for path, following links (the last one only if follow)."""
        return self._walk(_split(path), follow, path, depth=0)

    def _walk(self, parts, follow, original, depth):
        if depth > 40:
            raise kernel_error(errno.ELOOP, None, original)
        node, real = self.root, []
        for i, name in enumerate(parts):
            if not isinstance(node, Dir):
                raise kernel_error(errno.ENOTDIR, None, original)
            if name == "..":
                real = real[:-1]
                node, _ = self._walk(real, True, original, depth + 1) if real else (self.root, "/")
                continue
            child = node.entries.get(name)
            if child is None:
                raise kernel_error(errno.ENOENT, None, original)
            last = i == len(parts) - 1
            if isinstance(child, Link) and (follow or not last):
                child, target = self._walk(_split(child.target), True, original, depth + 1)
                real = _split(target)
            else:
                real = real + [name]
            node = child
        return node, "/" + "/".join(real)

    # --- the calls ----------------------------------------------------------------------------
    def listdir(self, path):
        node, _ = self.lookup(path)
        if not isinstance(node, Dir):
            raise kernel_error(errno.ENOTDIR, None, path)
        return sorted(node.entries)

    def readlink(self, path):
        node, real = self.lookup(path, follow=False)
        if not isinstance(node, Link):
            raise kernel_error(errno.EINVAL, None, path)
        return posixpath.relpath(node.target, posixpath.dirname(real))

    def realpath(self, path):
        return self.lookup(path)[1]

    def read(self, path):
        node, _ = self.lookup(path)
        if isinstance(node, Dir):
            raise kernel_error(errno.EISDIR, None, path)
        if not isinstance(node, Attr) or node.show is None:
            raise kernel_error(errno.EACCES, "write-only attribute" if isinstance(node, Attr) else None, path)
        value = node.show()
        return value.encode() if isinstance(value, str) else bytes(value)

    def writable_attr(self, path):
        """The Attr a write to path reaches: open(O_WRONLY) then write, as the host board does."""
        node, _ = self.lookup(path)
        if isinstance(node, Dir):
            raise kernel_error(errno.EISDIR, None, path)
        if not isinstance(node, Attr) or node.store is None:
            raise kernel_error(errno.EACCES, "read-only attribute", path)
        return node

    def write(self, path, data):
        attr = self.writable_attr(path)
        if not data:
            return 0        # sysfs_kf_write: a zero-length write never reaches the store method
        attr.store(bytes(data))
        return len(data)
