"""QemuBoard: the board contract answered by a real aarch64 Linux kernel under QEMU.

Every call is proxied to the guest agent (agent.py), which runs the host board's code there. What a
learner holds on this side behaves as on a host:
  - fds are numbers in *this* process: a guest file (container, group, device) is stood for by a
    placeholder fd here (an open /dev/null, so the number is unique and closing it is harmless);
    board calls translate it to the guest's fd, including inside ioctl arguments that carry fds
    (VFIO_GROUP_SET_CONTAINER, VFIO_DEVICE_SET_IRQS and KVM_IRQFD with eventfds); the fds KVM
    ioctls return (KVM_CREATE_VM, KVM_CREATE_VCPU, KVM_CREATE_DEVICE's fd field) get placeholders;
  - KVM (virtualization=on starts the guest at EL2; the default under TCG, and impossible under KVM
    acceleration, accel.py: virtualization=True then picks TCG): the agent runs each KVM_RUN in
    a thread of its own, so other calls (from other threads here) go on while a vCPU runs; a
    KVM_RUN returns EINTR (KVM_EXIT_INTR) after half a second, as after a VMM's timer signal, so a
    guest waiting in WFI hands control back; user pointers in KVM structs (memory slots,
    ONE_REG, device attributes) are guest addresses: use board.alloc() buffers (.vaddr);
  - eventfd() gives a real eventfd of this process; when the guest's twin fires (an MSI through the
    ITS, say) the agent reports it and this side signals the local one, so poll, select and asyncio
    wait on it directly; writing it writes the guest's twin (where the kernel may consume it, as
    vfio's unmask eventfds do) and what is left in the counter comes back here;
  - alloc() gives guest memory: its pages are mapped here from the shared guest RAM, so the buffer
    protocol reads and writes exactly what the device's DMA reads and writes; .vaddr is the guest
    address that VFIO_IOMMU_MAP_DMA takes;
  - mmap() gives a mapping whose read32/write32... are single accesses made by the agent.
A guest that panics or stops answering raises GuestError with the tail of its console.

Where QEMU 7.2's machine is not real hardware, a lab shows it as it is here: an ordinary PCI DMA
write carries no requester ID, so a device's DMA that reaches GITS_TRANSLATER (an MSI forged with
its DMA engine) arrives as DeviceID 0, which no MAPD mapped, and the ITS drops it: nothing is raised,
not even the writer's own LPI, which real hardware (and the sim) would raise. Real MSIs carry the
requester ID and work. (REFERENCE.md section 11; tests/scenarios.py msi_forged_by_dma.)
"""
import atexit
import ctypes
import errno
import mmap
import os
import queue
import select
import threading
import time
import weakref

from ... import uapi
from ... import uapi_kvm
from ..mapping import RegisterWindow, ioctl_arg
from . import accel as accelerators
from . import image as guest_image
from . import protocol, smmu_events
from .machine import RAM_BASE, Machine

CALL_TIMEOUT = 30.0  # seconds a guest call may take (TCG is slow; a 1 GiB MAP_DMA is slower still)
NOT_AN_FD = 0x7FFFFFFF   # stands for fds that are not this board's; the guest answers EBADF
_live = weakref.WeakSet()


# open() flags whose values differ between architectures (x86-64 and arm64 disagree on O_DIRECT,
# O_DIRECTORY, O_NOFOLLOW, O_LARGEFILE): they cross to the guest by name.
# Composite flags (O_TMPFILE holds O_DIRECTORY, O_SYNC holds O_DSYNC) come before their parts.
OPEN_FLAG_NAMES = ("O_TMPFILE", "O_SYNC", "O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND",
                   "O_NONBLOCK", "O_DSYNC", "O_DIRECT", "O_DIRECTORY", "O_NOFOLLOW", "O_NOATIME",
                   "O_CLOEXEC", "O_PATH", "O_LARGEFILE")


def open_flags_by_name(flags):
    """(access mode, [names of the other flags]) for the guest to rebuild with its own values."""
    if isinstance(flags, bool) or not isinstance(flags, int):
        raise TypeError(f"open flags must be an int, not {type(flags).__name__}")
    names, rest = [], flags & ~os.O_ACCMODE
    for name in OPEN_FLAG_NAMES:
        value = getattr(os, name, 0)
        if value and rest & value == value:
            names.append(name)
            rest &= ~value
    if rest:
        raise ValueError(f"open flags {rest:#o} are not known to the qemu board")
    return flags & os.O_ACCMODE, names


class GuestError(RuntimeError):
    """The guest kernel or its agent is gone or silent (not an answer of the kernel: that is OSError)."""


def _share_dir():
    """The directory holding the vfiolab package: shared read-only into the guest over 9p."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _libc_mmap():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long)
    return libc.mmap


def _page_runs(gpas):
    """[(first page index, guest-physical address, page count)] of physically contiguous runs."""
    runs = []
    for i, gpa in enumerate(gpas):
        if runs and runs[-1][1] + runs[-1][2] * mmap.PAGESIZE == gpa:
            runs[-1][2] += 1
        else:
            runs.append([i, gpa, 1])
    return runs


class QemuDmaBuffer(mmap.mmap):
    """Guest memory for DMA, seen from here: .vaddr (guest virtual, for MAP_DMA), .size, .gpas.

    The guest's buffer is freed when this one is closed or garbage-collected (as free() would be;
    pages VFIO still has pinned stay pinned until VFIO_IOMMU_UNMAP_DMA, as in the kernel)."""

    def __new__(cls, board, bid, size, vaddr, gpas):
        self = super().__new__(cls, -1, len(gpas) * mmap.PAGESIZE,
                               flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        # Replace the pages of this reservation by the guest pages behind it (MAP_FIXED over our
        # own mapping), so the mmap's memory *is* the guest's.
        anchor = ctypes.c_char.from_buffer(self)
        base = ctypes.addressof(anchor)
        del anchor
        libc_mmap = _libc_mmap()
        for first, gpa, count in _page_runs(gpas):
            want = base + first * mmap.PAGESIZE
            addr = libc_mmap(want, count * mmap.PAGESIZE, mmap.PROT_READ | mmap.PROT_WRITE,
                             mmap.MAP_SHARED | 0x10,  # MAP_FIXED
                             board._machine.ram_fd, gpa - RAM_BASE)
            if addr != want:
                raise OSError(ctypes.get_errno(), "mapping guest memory failed")
        self.size, self.vaddr, self.gpas, self.bid = size, vaddr, gpas, bid
        weakref.finalize(self, board._free_later, bid)
        return self

    def __repr__(self):
        return f"<QemuDmaBuffer {self.size:#x} bytes at guest vaddr {self.vaddr:#x}>"


class QemuMapping(RegisterWindow):
    """A device region mapped in the guest; each access is one load or store there."""

    def __init__(self, board, mid, length, offset, prot):
        self._board, self._mid, self.length, self.offset, self.prot = board, mid, length, offset, prot
        self.closed = False

    def _load(self, width, off):
        return self._board._call("mread", self._mid, width, off)

    def _store(self, width, off, value):
        self._board._call("mwrite", self._mid, width, off, value)

    def close(self):
        if not self.closed:
            self.closed = True
            if self._board._alive():
                self._board._call("munmap", self._mid)

    def __len__(self):
        return self.length


class QemuBoard:
    """A real aarch64 Linux under qemu-system-aarch64 -M virt (SMMUv3, GICv3 ITS or GICv2m, edu)."""

    kind = "qemu"

    def __init__(self, gic="its", allow_unsafe_interrupts=False, *, memory_mib=512, cpus=1,
                 timeout=CALL_TIMEOUT, quiet=False, virtualization=None, vfio_platform=False,
                 accel=None):
        # One board per Python process (per notebook kernel): re-running the cell that opens a
        # board replaces the old one instead of leaving a second QEMU running.
        for old in list(_live):
            if not quiet:
                print(f"closing the qemu board opened earlier (QEMU pid {old.qemu_pid}): "
                      "one runs per Python process")
            old.close()
        self.gic, self.allow_unsafe_interrupts, self.timeout = gic, allow_unsafe_interrupts, timeout
        # accel="tcg" keeps QEMU's emulated GIC/ITS even on an ARM host with KVM (accel.choose).
        self._machine = Machine(gic, allow_unsafe_interrupts, memory_mib, cpus, _share_dir(),
                                virtualization=virtualization,
                                accel=accelerators.choose(virtualization, board_asks=accel)
                                if accel is not None else None)
        self._guest_fd = {}      # placeholder fd here -> fd in the guest
        self._eventfds = {}      # eventfd here -> its twin in the guest
        self._eventfd_of_guest = {}   # guest eventfd -> the fd here that it signals
        self._adopted = {}            # dup of an eventfd made outside the board -> (guest twin, inode)
        self._buffers = weakref.WeakSet()
        self._to_free = []            # guest buffers whose host side is gone
        self._mappings = []
        self._waiting = {}       # seq -> Queue of the call waiting for that answer
        self._closed = False     # the agent's connection ended
        self._send_lock = threading.Lock()
        self._seq = 0
        self._dead = None        # why the guest is gone, once it is
        self._sock = None
        self._reader = None
        self._death = os.eventfd(0, os.EFD_CLOEXEC)  # signalled when the agent's connection ends
        self.vfio_platform = bool(vfio_platform)
        if self.vfio_platform:           # what this machine lacks, before any download or boot
            from . import vfio_platform_build
            vfio_platform_build.require_tools()
        image = guest_image.ensure_image()
        if self.vfio_platform:
            self._add_vfio_platform()
        started = time.monotonic()
        self._machine.start(image)
        _live.add(self)
        try:
            self._sock = self._machine.connect_agent()
            self._reader = threading.Thread(target=self._read_loop, name="vfiolab-qemu-agent",
                                            daemon=True)
            self._reader.start()
            self.guest = self._call("ping", timeout=60, watch=self._agent_exited)
        except BaseException:
            self.close()
            raise
        if self.vfio_platform:
            self._enable_noiommu(quiet)
        self.boot_seconds = time.monotonic() - started
        if not quiet:
            print(f"qemu board ready in {self.boot_seconds:.1f} s: Linux {self.guest['release']} "
                  f"(aarch64, GIC {gic}, SMMUv3, edu), Python {self.guest['python']} agent")

    # --- vfio-platform (vfio_platform=True) and kernel modules -------------------------------
    def _add_vfio_platform(self):
        """Modules built for the guest kernel (vfio_platform_build.py) on a second 9p share, and
        a calxeda,hb-xgmac node in the device tree (xgmac_dtb.py)."""
        from . import vfio_platform_build, xgmac_dtb
        built = vfio_platform_build.ensure_modules()
        self._machine.extra_args += [
            "-fsdev", f"local,id=mods,path={built.directory},security_model=none,readonly=on",
            "-device", "virtio-9p-device,fsdev=mods,mount_tag=vfiolab-modules"]
        self._machine.dtb_editor = xgmac_dtb.dtb_with_xgmac

    def _enable_noiommu(self, quiet):
        """Swap Debian's vfio.ko for the CONFIG_VFIO_NOIOMMU build (same symbol CRCs), loaded with
        enable_unsafe_noiommu_mode=1: the xgmac node is behind no IOMMU."""
        loaded = self.modules()
        for name in ("vfio_pci", "vfio_pci_core", "vfio_iommu_type1", "vfio"):
            if name in loaded:
                self.rmmod(name)
        self.modprobe("vfio", enable_unsafe_noiommu_mode=1)
        self.modprobe("vfio_iommu_type1", allow_unsafe_interrupts=self.allow_unsafe_interrupts)
        self.modprobe("vfio_pci")
        if not quiet:
            print("qemu board: VFIO in no-IOMMU mode for the xgmac node: such a device can DMA "
                  "anywhere in guest memory (nothing is isolated), and using it taints the kernel")

    def modprobe(self, name, **params):
        """Load a module and its dependencies in the guest (finit_module, as insmod does)."""
        args = " ".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in params.items())
        return self._call("modprobe", str(name), args)

    def rmmod(self, name):
        self._call("rmmod", str(name))

    def modules(self):
        """{name: {"params", "refcount", "used_by"}} from the guest's /proc/modules."""
        return self._call("modules")

    # --- wire ---------------------------------------------------------------------------------
    def _read_loop(self):
        reader = protocol.FrameReader()
        try:
            while True:
                data = self._sock.recv(1 << 16)
                if not data:
                    break
                for message in reader.feed(data):
                    if message[0] == "event":
                        local = self._eventfd_of_guest.get(message[1])
                        if local is not None:
                            try:
                                os.eventfd_write(local, message[2])
                            except OSError:  # closed meanwhile
                                pass
                    else:
                        # Answers go to the call that waits for them, so calls from several
                        # threads overlap (a KVM_RUN blocks in the guest while others go on);
                        # an answer nobody waits for (its call timed out) is dropped.
                        box = self._waiting.get(message[1])
                        if box is not None:
                            box.put(message)
        except OSError:
            pass
        self._closed = True
        for box in list(self._waiting.values()):
            box.put(("closed",))
        try:
            os.eventfd_write(self._death, 1)  # wakes a poll() that waits for an MSI in vain
        except OSError:
            pass

    def _alive(self):
        return self._dead is None and self._sock is not None

    def _guest_gone(self, what):
        """GuestError saying what happened, with the guest console's last lines."""
        time.sleep(0.3)  # let QEMU flush the console log (a panic prints last)
        status = self._machine.proc.poll() if self._machine.proc else None
        state = (f"QEMU exited with status {status}" if status is not None
                 else "QEMU is still running")
        tail = self._machine.console_tail() if self._machine.rundir else "(console log removed)"
        if status not in (None, 0):
            # QEMU itself stopped (a device model's hw_error aborts the whole VM): say what it said.
            said = [l for l in self._machine.qemu_stderr(first=True).splitlines() if l.strip()][:1]
            if said:
                state += "; QEMU said: " + " / ".join(said)
                if "EDU: DMA range" in said[0]:
                    state += (" (QEMU 7.2's edu rejects a DMA that ends at the last byte of its "
                              "buffer, an off-by-one fixed in QEMU 9.1: stay strictly inside it)")
        panic = self._machine.console_grep("Kernel panic") if self._machine.rundir else None
        if panic and panic not in tail:
            tail = f"{panic}\n...\n{tail}"
        self._dead = f"{what} ({state})"
        return GuestError(f"the qemu board's guest {what} ({state}). Open a new board with "
                          f"vfiolab.open_board('qemu'). Last lines of the guest console:\n{tail}")

    def _agent_exited(self):
        """While booting: the agent died (init said so on the console), so no answer will come."""
        said = self._machine.console_grep(guest_image.AGENT_EXITED)
        if said:
            raise self._guest_gone(f"agent stopped before it was ready: {said.strip()}")

    def _call(self, op, *args, timeout=None, watch=None):
        """Send one call and wait for its answer; `watch()` runs every 0.25 s while waiting."""
        if self._dead:
            raise GuestError(f"the qemu board is not usable: {self._dead}")
        while self._to_free and op != "free":
            try:
                self._call("free", self._to_free.pop())
            except (IndexError, OSError, ValueError):
                pass
        box = queue.Queue()
        with self._send_lock:
            self._seq += 1
            seq = self._seq
            self._waiting[seq] = box
            try:
                self._sock.sendall(protocol.encode((seq, op, args)))
            except OSError:
                self._waiting.pop(seq, None)
                raise self._guest_gone("closed its connection") from None
        try:
            if self._closed:
                box.put(("closed",))
            deadline = time.monotonic() + (timeout or self.timeout)
            while True:
                left = max(0.0, deadline - time.monotonic())
                try:
                    reply = box.get(timeout=min(left, 0.25) if watch else left)
                except queue.Empty:
                    if time.monotonic() < deadline:
                        watch()
                        continue
                    raise self._guest_gone(f"did not answer {op} within {timeout or self.timeout:.0f} s")
                if reply[0] == "closed":
                    raise self._guest_gone("stopped (its kernel panicked or powered off)")
                break
        finally:
            self._waiting.pop(seq, None)
        if reply[0] == "ok":
            return reply[2]
        if reply[0] == "oserror":
            _, _, code, strerror, filename = reply
            raise OSError(code, strerror, filename) if filename else OSError(code, strerror)
        _, _, kind, message = reply
        raise {"TypeError": TypeError, "ValueError": ValueError, "KeyError": ValueError,
               "BufferError": BufferError, "OverflowError": OverflowError}.get(kind, RuntimeError)(
            message)

    # --- fd translation -----------------------------------------------------------------------
    def _to_guest(self, fd):
        if isinstance(fd, bool) or not isinstance(fd, int):
            raise TypeError(f"fd must be an int, not {type(fd).__name__}")
        if fd in self._guest_fd:
            return self._guest_fd[fd]
        if fd in self._eventfds:
            return self._eventfds[fd]
        return NOT_AN_FD  # not a file of this board: the guest kernel answers EBADF, as for a closed fd

    def _eventfd_to_guest(self, fd):
        """The guest fd that an eventfd argument of VFIO_DEVICE_SET_IRQS stands for.

        Like eventfd_ctx_fdget: a closed fd is EBADF, an open fd that is no eventfd is EINVAL. An
        eventfd this board did not make (os.eventfd()) is adopted: the board keeps a dup of it (as
        the kernel keeps a reference) and signals it when its new guest twin fires.
        """
        if fd in self._guest_fd or fd in self._eventfds:
            return self._to_guest(fd)
        try:
            inode = os.fstat(fd).st_ino
        except OSError:
            return NOT_AN_FD                     # EBADF in the guest
        try:
            is_eventfd = os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventfd]"
        except OSError:
            is_eventfd = False
        if not is_eventfd:
            return 0                             # the agent's stdin (/dev/null): EINVAL in the guest
        for dup, (guest, dup_inode) in self._adopted.items():
            if dup_inode == inode and os.path.samestat(os.fstat(dup), os.fstat(fd)):
                return guest
        dup = os.dup(fd)
        guest = self._call("eventfd")
        self._adopted[dup] = (guest, inode)
        self._eventfd_of_guest[guest] = dup
        return guest

    def _placeholder(self, guest_fd):
        local = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._guest_fd[local] = guest_fd
        return local

    def _translate_fds_in(self, request, data):
        """Rewrite fds carried inside an ioctl argument (bytes of it) into the guest's numbers."""
        if request == uapi_kvm.KVM_IRQFD and len(data) >= 16:
            # struct kvm_irqfd: fd at 0, resamplefd at 12 (read only with KVM_IRQFD_FLAG_RESAMPLE).
            flags = int.from_bytes(data[8:12], "little")
            for at in (0, 12) if flags & uapi_kvm.KVM_IRQFD_FLAG_RESAMPLE else (0,):
                fd = int.from_bytes(data[at:at + 4], "little", signed=True)
                data[at:at + 4] = self._eventfd_to_guest(fd).to_bytes(4, "little", signed=True)
        elif request == uapi.VFIO_GROUP_SET_CONTAINER and len(data) >= 4:
            fd = int.from_bytes(data[:4], "little", signed=True)
            data[:4] = self._to_guest(fd).to_bytes(4, "little", signed=True)
        elif request == uapi.VFIO_DEVICE_SET_IRQS and len(data) >= 20:
            flags, count = int.from_bytes(data[4:8], "little"), int.from_bytes(data[16:20], "little")
            if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
                for i in range(min(count, (len(data) - 20) // 4)):
                    at = 20 + 4 * i
                    fd = int.from_bytes(data[at:at + 4], "little", signed=True)
                    if fd >= 0:  # -1 means "no eventfd" (de-assign) and stays as it is
                        data[at:at + 4] = self._eventfd_to_guest(fd).to_bytes(4, "little", signed=True)

    # --- the contract -------------------------------------------------------------------------
    def open(self, path, flags=os.O_RDWR):
        try:
            return self._placeholder(self._call("open", os.fspath(path), *open_flags_by_name(flags)))
        except FileNotFoundError as e:
            if os.fspath(path) == "/dev/kvm" and not self._machine.virtualization:
                raise FileNotFoundError(
                    e.errno, "the qemu board's guest has no KVM of its own: QEMU runs it under "
                    f"{self._machine.accel.name.upper()} without virtualization=on "
                    f"({self._machine.accel.reason}). Open the board with virtualization=True "
                    "(TCG, the guest starts at EL2) for a guest with /dev/kvm", "/dev/kvm") from e
            raise

    def close(self, fd=None):
        """close(fd) closes one file; close() with no fd shuts the board down (as `with` does)."""
        if fd is None:
            return self.shutdown()
        if fd in self._eventfds:
            guest = self._eventfds.pop(fd)
            self._eventfd_of_guest.pop(guest, None)
            os.close(fd)
            self._call("close", guest)
        elif fd in self._guest_fd:
            guest = self._guest_fd.pop(fd)
            os.close(fd)
            self._call("close", guest)
        else:
            self._call("close", NOT_AN_FD)  # EBADF from the guest kernel

    def ioctl(self, fd, request, arg=0):
        guest_fd = self._to_guest(fd)
        passed = ioctl_arg(arg)
        if isinstance(passed, int):
            ret, _ = self._call("ioctl", guest_fd, request, "int", passed)
        else:
            view, writable = passed
            data = bytearray(view)
            self._translate_fds_in(request, data)
            if writable:
                original = bytes(view)
                ret, out = self._call("ioctl", guest_fd, request, "inout", bytes(data))
                if bytes(data) != original:
                    # The kernel's answer, except where we put the guest's fd numbers: the caller's stay.
                    out = bytes(o if t == a else a for o, t, a in zip(original, data, out))
                n = min(len(out), len(view))
                view[:n] = out[:n]
            else:
                ret, _ = self._call("ioctl", guest_fd, request, "in", bytes(data))
        if request in (uapi.VFIO_GROUP_GET_DEVICE_FD, uapi_kvm.KVM_CREATE_VM, uapi_kvm.KVM_CREATE_VCPU):
            return self._placeholder(ret)
        if request == uapi_kvm.KVM_CREATE_DEVICE and not isinstance(passed, int) and passed[1] \
                and not int.from_bytes(bytes(passed[0][8:12]), "little") & 1:   # not KVM_CREATE_DEVICE_TEST
            view = passed[0]
            guest = int.from_bytes(bytes(view[4:8]), "little")
            view[4:8] = self._placeholder(guest).to_bytes(4, "little")
        return ret

    def read(self, fd, n, offset=None):
        if fd in self._eventfds:
            return os.read(fd, n) if offset is None else os.pread(fd, n, offset)
        return self._call("read", self._to_guest(fd), n, offset)

    def write(self, fd, data, offset=None):
        # A board eventfd is written in the guest, where the kernel may be listening to it (an
        # unmask eventfd, KVM-resamplefd style, is consumed by vfio's virqfd at once); whatever the
        # kernel leaves in the counter comes back here with the agent's event report, which the
        # agent sends before its answer, so a read right after this write sees it.
        target = self._eventfds.get(fd)
        if target is not None and offset is None and not self._eventfd_fits(fd, data):
            # The counter here cannot take it: the write blocks, or fails with EAGAIN, here, as in
            # eventfd_write (the guest's twin is drained, so it would always accept the value).
            return os.write(fd, data)
        return self._call("write", self._to_guest(fd) if target is None else target, bytes(data), offset)

    @staticmethod
    def _eventfd_fits(fd, data):
        """Whether eventfd fd's counter can take the 8-byte value in data (ULLONG_MAX - 1 at most)."""
        data = bytes(data)
        if len(data) < 8:
            return True            # EINVAL: the guest says so
        value = int.from_bytes(data[:8], "little")
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                count = next((int(line.split()[1], 16) for line in f if line.startswith("eventfd-count:")), 0)
        except OSError:
            return True
        return value == (1 << 64) - 1 or count + value <= (1 << 64) - 2

    def mmap(self, fd, length, offset=0, *, prot=mmap.PROT_READ | mmap.PROT_WRITE, flags=mmap.MAP_SHARED):
        mid, length = self._call("mmap", self._to_guest(fd), length, offset, prot, flags)
        mapping = QemuMapping(self, mid, length, offset, prot)
        self._mappings.append(mapping)
        return mapping

    def eventfd(self, initval=0, flags=os.EFD_CLOEXEC):
        guest = self._call("eventfd")
        local = os.eventfd(initval, flags)
        self._eventfds[local] = guest
        self._eventfd_of_guest[guest] = local
        return local

    def poll(self, fds, timeout_ms=None):
        """The fds (of `fds`, in order) readable within timeout_ms; eventfds are waited on here."""
        fds = list(fds)
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        if self._dead is None:
            poller.register(self._death, select.POLLIN)
        ready = {fd: ev for fd, ev in poller.poll(timeout_ms)}
        if any(ev & select.POLLNVAL for ev in ready.values()):
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        if self._death in ready and not any(ready.get(fd) for fd in fds):
            raise self._guest_gone("stopped while you waited")  # nothing will ever arrive
        return [fd for fd in fds if ready.get(fd, 0) & (select.POLLIN | select.POLLERR | select.POLLHUP)]

    def alloc(self, size):
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"alloc size must be an int, not {type(size).__name__}")
        if size <= 0:
            raise ValueError(f"alloc size must be positive, not {size}")
        bid, vaddr, gpas = self._call("alloc", size)
        buf = QemuDmaBuffer(self, bid, size, vaddr, gpas)
        self._buffers.add(buf)
        return buf

    def write_code(self, buffer, offset, data):
        """Put code (e.g. a KVM guest) into a board.alloc() buffer with the guest's own CPU.
        QEMU's TCG keeps translated code per guest-physical page and drops it only when its
        emulated CPU writes the page; bytes stored through this side's view of the shared RAM
        would leave a page that once held other code running the old code."""
        if not isinstance(buffer, QemuDmaBuffer) or buffer not in self._buffers:
            raise TypeError("write_code takes a buffer from this board's alloc()")
        self._call("poke", buffer.bid, offset, bytes(data))

    def _free_later(self, bid):
        """A buffer was dropped here: free its guest side with the next call (a finalizer must
        not talk to the guest itself: it may run in the middle of another call)."""
        self._to_free.append(bid)

    def listdir(self, path):
        return self._call("listdir", os.fspath(path))

    def readlink(self, path):
        return self._call("readlink", os.fspath(path))

    def sysfs_read(self, path):
        return self._call("sysfs_read", os.fspath(path))

    def sysfs_write(self, path, text):
        return self._call("sysfs_write", os.fspath(path), text if isinstance(text, str) else bytes(text))

    # --- beyond the contract ------------------------------------------------------------------
    def dmesg(self):
        """The guest kernel's log (as `dmesg` prints it)."""
        return self._call("dmesg")

    def iommu_faults(self):
        """Every SMMU fault event the guest kernel logged: (stream, device, iova, length, access,
        reason), oldest first, as the sim board reports them. QEMU's SMMU model faults each
        access of a DMA separately, so one bad DMA may give several events."""
        return smmu_events.parse(self.dmesg())

    def console_tail(self, lines=25):
        """The last lines the guest printed on its serial console."""
        return self._machine.console_tail(lines)

    @property
    def qemu_pid(self):
        return self._machine.proc.pid if self._machine.proc else None

    @property
    def console_socket(self):
        """A unix socket on the guest's serial console (a busybox shell): `vfiolab console`."""
        return self._machine.console_socket

    # --- lifetime -----------------------------------------------------------------------------
    def shutdown(self):
        """Stop QEMU and release everything on this side. Safe to call twice."""
        _live.discard(self)
        if self._alive() and self._machine.alive():
            try:
                self._call("poweroff", timeout=2)
            except (GuestError, OSError):
                pass
        self._dead = self._dead or "closed"
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._machine.stop()
        if self._reader is not None:
            self._reader.join(2)
        if self._death >= 0:
            os.close(self._death)
            self._death = -1
        for buf in list(self._buffers):
            try:
                buf.close()
            except BufferError:  # a memoryview still holds it; its pages stay readable
                pass
        self._to_free.clear()
        for fd in list(self._guest_fd) + list(self._eventfds) + list(self._adopted):
            try:
                os.close(fd)
            except OSError:
                pass
        self._guest_fd.clear()
        self._eventfds.clear()
        self._adopted.clear()
        self._eventfd_of_guest.clear()
        for mapping in self._mappings:
            mapping.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def __del__(self):
        try:
            if self._machine.alive():
                self._machine.stop()
        except Exception:
            pass

    def __repr__(self):
        state = "closed" if self._dead else f"running (QEMU pid {self.qemu_pid})"
        return f"<QemuBoard gic={self.gic} allow_unsafe_interrupts={self.allow_unsafe_interrupts}: {state}>"


@atexit.register
def _close_all_boards():
    for board in list(_live):
        board.shutdown()
