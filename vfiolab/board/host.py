"""The host board: the board contract answered by the kernel this Python runs on.

Every call is the real system call (os.open, fcntl.ioctl, mmap, os.eventfd, select.poll), and every
failure is the kernel's own OSError. Standard library only: the qemu board's guest agent serves its
calls with this very class, under Debian's bare python3.11 inside the aarch64 guest.

ioctl arguments follow the C calling convention a VFIO driver uses:
  - an int is passed by value (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU);
  - a ctypes object (a uapi struct, ctypes.c_int32(container_fd)) is passed by pointer and the
    kernel's answer is copied back into it (vfio_group_status, vfio_region_info, ...);
  - a bytearray is passed by pointer and updated in place;
  - bytes are passed by pointer, read-only (VFIO_GROUP_GET_DEVICE_FD takes the device name).
"""
import errno
import fcntl
import mmap
import os
import select

from .mapping import DmaBuffer, RegisterMapping, ioctl_arg

VFIO_DIR = "/dev/vfio"
TYPE1_UNSAFE_PARAM = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"


def _no_vfio_error(path):
    """ENOENT under /dev/vfio with no /dev/vfio at all: say why and what to do."""
    return FileNotFoundError(
        errno.ENOENT,
        f"{VFIO_DIR} is absent on this machine, so {path} cannot be opened: no VFIO driver is loaded. "
        "Load one (sudo modprobe vfio-pci, or vfio-platform on ARM with CONFIG_VFIO_PLATFORM), "
        "check `vfiolab doctor host`, or use the sim or qemu board",
        path)


def _module_arg(name):
    if not isinstance(name, str) or not name or name.startswith("-"):
        raise TypeError(f"a module name is a non-empty str not starting with '-', not {name!r}")
    return name


def _kmod_errno(message):
    """The errno behind a modprobe/rmmod message (they print strerror or their own words)."""
    text = message.lower()
    for needle, code in (("not found", errno.ENOENT), ("not currently loaded", errno.ENOENT),
                         ("in use", errno.EBUSY), ("invalid argument", errno.EINVAL),
                         ("operation not permitted", errno.EPERM),
                         ("permission denied", errno.EACCES), ("exec format", errno.ENOEXEC),
                         ("key was rejected", errno.EKEYREJECTED)):
        if needle in text:
            return code
    return errno.EIO


class HostBoard:
    """This machine's kernel behind the board contract (see vfiolab.board)."""

    kind = "host"
    proc_modules, sys_module = "/proc/modules", "/sys/module"     # (tests point these elsewhere)

    def __init__(self, gic=None, allow_unsafe_interrupts=False, **options):
        if options:
            raise TypeError(f"the host board takes no options {', '.join(sorted(options))}")
        # The GIC is whatever the hardware has; `gic` only records what the caller expects.
        self.gic = gic
        self.allow_unsafe_interrupts = allow_unsafe_interrupts
        if allow_unsafe_interrupts and os.path.exists(TYPE1_UNSAFE_PARAM):
            # The parameter is read when a group is attached, so setting it now is enough.
            with open(TYPE1_UNSAFE_PARAM, "w") as f:
                f.write("Y")
        self._fds = set()
        self._mappings = []
        self._buffers = []

    # --- files -------------------------------------------------------------------------------
    def open(self, path, flags=os.O_RDWR):
        try:
            fd = os.open(path, flags | os.O_CLOEXEC)
        except FileNotFoundError:
            if str(path).startswith(VFIO_DIR + "/") and not os.path.isdir(VFIO_DIR):
                raise _no_vfio_error(path) from None
            raise
        self._fds.add(fd)
        return fd

    def close(self, fd=None):
        """close(fd) closes one file; close() with no fd closes the board (as `with` does)."""
        if fd is None:
            return self.shutdown()
        os.close(fd)
        self._fds.discard(fd)

    def ioctl(self, fd, request, arg=0):
        passed = ioctl_arg(arg)
        if isinstance(passed, int):
            return fcntl.ioctl(fd, request, passed)
        view, writable = passed
        # fcntl.ioctl copies a writable buffer in and the kernel's answer back out itself.
        return fcntl.ioctl(fd, request, view if writable else bytearray(view), True)

    def read(self, fd, n, offset=None):
        return os.read(fd, n) if offset is None else os.pread(fd, n, offset)

    def write(self, fd, data, offset=None):
        return os.write(fd, data) if offset is None else os.pwrite(fd, data, offset)

    def mmap(self, fd, length, offset=0, *, prot=mmap.PROT_READ | mmap.PROT_WRITE, flags=mmap.MAP_SHARED):
        mapping = RegisterMapping(fd, length, offset, prot, flags)
        self._mappings.append(mapping)
        return mapping

    # --- events ------------------------------------------------------------------------------
    def eventfd(self, initval=0, flags=os.EFD_CLOEXEC):
        fd = os.eventfd(initval, flags)
        self._fds.add(fd)
        return fd

    def poll(self, fds, timeout_ms=None):
        """The fds (of `fds`, in order) that are readable within timeout_ms (None: wait forever)."""
        fds = list(fds)
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        ready = {fd: ev for fd, ev in poller.poll(timeout_ms)}
        bad = [fd for fd, ev in ready.items() if ev & select.POLLNVAL]
        if bad:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF) + f" (fd {bad[0]} is not open)")
        return [fd for fd in fds if ready.get(fd, 0) & (select.POLLIN | select.POLLERR | select.POLLHUP)]

    # --- memory ------------------------------------------------------------------------------
    def alloc(self, size):
        buf = DmaBuffer(size)
        self._buffers.append(buf)
        return buf

    # --- sysfs -------------------------------------------------------------------------------
    def listdir(self, path):
        return sorted(os.listdir(path))

    def readlink(self, path):
        return os.readlink(path)

    def sysfs_read(self, path):
        with open(path, "rb", buffering=0) as f:
            return f.read().decode(errors="replace")

    def sysfs_write(self, path, text):
        # One write() call: sysfs store methods see exactly one buffer, as with `echo x > file`.
        data = text.encode() if isinstance(text, str) else bytes(text)
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            return os.write(fd, data)
        finally:
            os.close(fd)

    # --- kernel modules: the real modprobe and rmmod ------------------------------------------
    def modprobe(self, name, **params):
        """`modprobe name key=value ...` (True/False as 1/0). OSError with the errno the failure
        means (ENOENT not found, EINVAL bad parameter, EPERM not root) and modprobe's message."""
        args = [f"{key}={int(v) if isinstance(v, bool) else v}" for key, v in params.items()]
        self._run_kmod(["modprobe", _module_arg(name), *args])
        return _module_arg(name).replace("-", "_")

    def rmmod(self, name):
        self._run_kmod(["rmmod", _module_arg(name)])

    def modules(self):
        """{name: {"params": {...}, "refcount": n, "used_by": [...]}} from /proc/modules and
        /sys/module/<name>/parameters (values as the kernel shows them: "Y", "65535", ...)."""
        out = {}
        if not os.path.exists(self.proc_modules):
            raise FileNotFoundError(errno.ENOENT, "no /proc/modules: this kernel has no loadable "
                                    "module support, or /proc is not mounted", self.proc_modules)
        with open(self.proc_modules) as f:
            for line in f:
                name, _size, refcount, used_by = line.split()[:4]
                params = {}
                pdir = f"{self.sys_module}/{name}/parameters"
                for p in (sorted(os.listdir(pdir)) if os.path.isdir(pdir) else []):
                    try:
                        with open(f"{pdir}/{p}") as pf:
                            params[p] = pf.read().strip()
                    except OSError:          # write-only or unreadable parameter
                        continue
                out[name] = {"params": params, "refcount": int(refcount),
                             "used_by": [m for m in used_by.split(",") if m and m != "-"]}
        return out

    @staticmethod
    def _run_kmod(cmd):
        import subprocess
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"{cmd[0]} is not installed (Debian: apt install "
                                    "kmod)") from None
        if run.returncode:
            message = (run.stderr or run.stdout).strip() or f"{cmd[0]} exited {run.returncode}"
            raise OSError(_kmod_errno(message), message)

    # --- beyond the contract ------------------------------------------------------------------
    def dmesg(self):
        """The kernel log as `dmesg` prints it ("[seconds] message" lines), from /dev/kmsg."""
        lines = []
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            while True:
                try:
                    record = os.read(fd, 8192).decode(errors="replace")
                except BlockingIOError:
                    break
                except BrokenPipeError:  # overwritten records were skipped; keep reading
                    continue
                prefix, _, text = record.partition(";")
                usec = int(prefix.split(",")[2])
                # /dev/kmsg escapes unprintable bytes as \xNN; dmesg(1) prints them unescaped.
                import re  # here, not at the top: the guest agent starts faster without it
                message = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)),
                                 text.splitlines()[0])
                lines.append(f"[{usec // 1000000:5d}.{usec % 1000000:06d}] {message}")
        finally:
            os.close(fd)
        return "\n".join(lines) + "\n"

    # --- lifetime ----------------------------------------------------------------------------
    def shutdown(self):
        """Unmap every mapping and close every fd this board opened (the kernel then releases them)."""
        for mapping in self._mappings:
            mapping.close()
        self._mappings.clear()
        for buf in self._buffers:
            try:
                buf.close()
            except BufferError:  # still exported (a memoryview is alive): the GC frees it later
                pass
        self._buffers.clear()
        # Devices before groups before containers: the reverse of opening.
        for fd in sorted(self._fds, reverse=True):
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def __repr__(self):
        return f"<HostBoard: this machine's kernel, {len(self._fds)} open fds>"
