"""The guest agent: serves the board contract inside the qemu guest with the host board's code.

Run by the guest's /init as `python3.11 -I -S -B agent.py SHARE` (SHARE: the 9p mount holding
vfiolab's source). It talks to the host-side QemuBoard over the virtio-serial port named
org.vfiolab.agent (protocol.py), one call at a time, and forwards every eventfd it created when it
fires, so the host can signal its own eventfd.
"""
import ctypes
import errno
import mmap
import os
import select
import signal
import struct
import sys
import threading

if __name__ == "__main__":
    sys.path.insert(0, sys.argv[1] if len(sys.argv) > 1 else "/opt/vfiolab")

from vfiolab.board.host import HostBoard  # noqa: E402
from vfiolab.board.qemu import kmod, protocol  # noqa: E402

PORT_NAME = "org.vfiolab.agent"
PAGE = mmap.PAGESIZE
# The guest has no kmod: modules load with finit_module and go with delete_module (arm64 numbers).
SYS_DELETE_MODULE, SYS_FINIT_MODULE = 106, 273
EXTRA_MODULES_TAG = "vfiolab-modules"      # 9p share of modules built for this kernel, if any
EXTRA_MODULES_DIR = "/lib/modules/vfiolab-extra"
KVM_RUN = 0xAE80          # _IO(KVMIO, 0x80): the agent must not import vfiolab.uapi_kvm's ctypes
KVM_RUN_SLICE = 0.5       # seconds a KVM_RUN runs before it returns EINTR


def find_port(timeout=20):
    """/dev/vportNpM of the virtio-serial port with our name (no udev here to make a by-name link).

    virtio_console adds ports from a work queue after QEMU announces them: wait for it a little."""
    base = "/sys/class/virtio-ports"
    for _ in range(int(timeout / 0.02)):
        for entry in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            try:
                with open(f"{base}/{entry}/name") as f:
                    if f.read().strip() == PORT_NAME and os.path.exists(f"/dev/{entry}"):
                        return f"/dev/{entry}"
            except OSError:
                pass
        select.select([], [], [], 0.02)
    raise SystemExit(f"vfiolab agent: no virtio-serial port named {PORT_NAME}")


def physical_pages(vaddr, size):
    """Guest-physical address of each page of [vaddr, vaddr+size), from /proc/self/pagemap."""
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(vaddr // PAGE * 8)
        entries = struct.unpack(f"<{size // PAGE}Q", f.read(size // PAGE * 8))
    if not all(e >> 63 for e in entries):
        raise OSError(errno.EFAULT, "a DMA buffer page is not present")
    return [(e & ((1 << 55) - 1)) * PAGE for e in entries]


class Agent:
    def __init__(self, port_path):
        self.board = HostBoard()
        self.port = os.open(port_path, os.O_RDWR)
        self.reader = protocol.FrameReader()
        self.mappings, self.buffers, self.watched = {}, {}, set()
        self.next_id = 1
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
        self.send_lock = threading.Lock()
        # A KVM_RUN thread is stopped by SIGUSR1 (its ioctl returns EINTR); the handler does nothing.
        signal.signal(signal.SIGUSR1, lambda *_: None)

    def send(self, message):
        data = protocol.encode(message)
        with self.send_lock:           # KVM_RUN threads answer too
            while data:
                data = data[os.write(self.port, data):]

    def new_id(self):
        self.next_id += 1
        return self.next_id

    # --- operations (names are the wire's) ------------------------------------------------------
    def op_ping(self):
        return {"release": os.uname().release, "machine": os.uname().machine,
                "python": sys.version.split()[0]}

    def op_open(self, path, access_mode, flag_names):
        flags = access_mode
        for name in flag_names:  # the host's flags by name: their values differ by architecture
            flags |= getattr(os, name)
        return self.board.open(path, flags)

    def op_close(self, fd):
        self.watched.discard(fd)
        self.board.close(fd)

    def op_ioctl(self, fd, request, kind, payload):
        if request == KVM_RUN:
            return self.kvm_run(fd, payload), None
        if kind == "int":
            return self.board.ioctl(fd, request, payload), None
        buf = bytearray(payload)
        ret = self.board.ioctl(fd, request, buf if kind == "inout" else bytes(buf))
        return ret, bytes(buf) if kind == "inout" else None

    def kvm_run(self, fd, arg):
        """KVM_RUN in this (KVM_RUN's own) thread for at most KVM_RUN_SLICE seconds: a guest
        waiting in WFI would block for ever, so a signal to this thread interrupts it, as a VMM's
        timer would, and the caller gets EINTR with kvm_run.exit_reason KVM_EXIT_INTR. Eventfds
        the run signalled (resamplefds) are forwarded before the answer, so the host sees them
        when KVM_RUN returns."""
        me = threading.get_ident()
        timer = threading.Timer(KVM_RUN_SLICE, lambda: self._interrupt(me))
        timer.start()
        try:
            return self.board.ioctl(fd, KVM_RUN, arg)
        finally:
            timer.cancel()
            for watched in list(self.watched):
                self.forward_event(watched)

    @staticmethod
    def _interrupt(thread):
        try:
            signal.pthread_kill(thread, signal.SIGUSR1)
        except (ProcessLookupError, OSError):
            pass

    def op_read(self, fd, n, offset):
        return self.board.read(fd, n, offset)

    def op_write(self, fd, data, offset):
        written = self.board.write(fd, data, offset)
        if fd in self.watched:  # an eventfd the host wrote: report what the kernel left in it
            self.forward_event(fd)
        return written

    def op_mmap(self, fd, length, offset, prot, flags):
        mid = self.new_id()
        self.mappings[mid] = self.board.mmap(fd, length, offset, prot=prot, flags=flags)
        return mid, self.mappings[mid].length

    def op_mread(self, mid, width, off):
        return self.mappings[mid].read(width, off)

    def op_mwrite(self, mid, width, off, value):
        self.mappings[mid].write(width, off, value)

    def op_munmap(self, mid):
        self.mappings.pop(mid).close()

    def op_eventfd(self):
        fd = self.board.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self.watched.add(fd)
        return fd

    def op_alloc(self, size):
        buf = self.board.alloc(size)
        for off in range(0, len(buf), PAGE):
            buf[off] = 0  # a write, so each page gets its own frame (not the shared zero page)
        if self.libc.mlock(buf.vaddr, len(buf)):
            raise OSError(ctypes.get_errno(), "mlock of a DMA buffer failed")
        bid = self.new_id()
        self.buffers[bid] = buf
        return bid, buf.vaddr, physical_pages(buf.vaddr, len(buf))

    def op_poke(self, bid, offset, data):
        """Store bytes into a buffer with this (the guest's) CPU: QEMU notices code changed only
        when its emulated CPU writes it, not when the host writes the shared RAM."""
        buf = self.buffers[bid]
        if offset < 0 or offset + len(data) > len(buf):
            raise ValueError(f"{offset:#x}+{len(data):#x} is outside the {len(buf):#x}-byte buffer")
        buf[offset:offset + len(data)] = data

    def op_free(self, bid):
        buf = self.buffers.pop(bid)
        try:
            buf.close()
        except BufferError:
            pass

    def op_listdir(self, path):
        return self.board.listdir(path)

    def op_readlink(self, path):
        return self.board.readlink(path)

    def op_sysfs_read(self, path):
        return self.board.sysfs_read(path)

    def op_sysfs_write(self, path, text):
        return self.board.sysfs_write(path, text)

    def op_dmesg(self):
        return self.board.dmesg()

    # --- kernel modules -----------------------------------------------------------------------
    def _installed_modules(self):
        """{name: path} of the image's modules, then the extra share's (which win: its vfio.ko is
        the no-IOMMU one)."""
        found = kmod.find_modules(f"/lib/modules/{os.uname().release}")
        if not os.path.ismount(EXTRA_MODULES_DIR) and os.path.isdir("/sys/bus/virtio"):
            os.makedirs(EXTRA_MODULES_DIR, exist_ok=True)
            self.libc.mount(EXTRA_MODULES_TAG.encode(), EXTRA_MODULES_DIR.encode(), b"9p", 1,
                            b"trans=virtio,version=9p2000.L")      # 1: MS_RDONLY; fails if absent
        if os.path.ismount(EXTRA_MODULES_DIR):
            found.update(kmod.find_modules(EXTRA_MODULES_DIR))
        return found

    def op_modprobe(self, name, params):
        """modprobe: the module (by name or alias) after its dependencies; loaded ones stay."""
        modules = self._installed_modules()
        target = name.replace("-", "_")
        if target not in modules:
            target = next((m for m, path in modules.items()
                           if name in kmod.modinfo(path).get("alias", "").split("\n")), None)
        if target is None:
            raise OSError(errno.ENOENT, f"modprobe: FATAL: Module {name} not found in directory "
                          f"/lib/modules/{os.uname().release}")
        loaded = set(self.board.modules())
        for mod in kmod.load_order([target], modules):
            if mod in loaded:
                continue
            fd = os.open(modules[mod], os.O_RDONLY | os.O_CLOEXEC)
            try:
                args = params if mod == target else ""
                if self.libc.syscall(SYS_FINIT_MODULE, fd, args.encode(), 0) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"modprobe: ERROR: could not insert '{mod}': {os.strerror(e)}")
            finally:
                os.close(fd)
        return target

    def op_rmmod(self, name):
        name = name.replace("-", "_")
        if self.libc.syscall(SYS_DELETE_MODULE, name.encode(), os.O_NONBLOCK) != 0:
            e = ctypes.get_errno()
            if e == errno.ENOENT:
                raise OSError(e, f"rmmod: ERROR: Module {name} is not currently loaded")
            if e in (errno.EWOULDBLOCK, errno.EBUSY):
                raise OSError(errno.EBUSY, f"rmmod: ERROR: Module {name} is in use")
            raise OSError(e, f"rmmod: ERROR: could not remove module {name}: {os.strerror(e)}")

    def op_modules(self):
        return self.board.modules()

    def op_poweroff(self):
        os.sync()
        self.send(("ok", self.current_seq, None))
        ctypes.CDLL(None).reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF; QEMU then exits

    # --- loop ---------------------------------------------------------------------------------
    def handle(self, seq, op, args):
        self.current_seq = seq
        if op == "ioctl" and len(args) > 1 and args[1] == KVM_RUN:
            # The vCPU runs in a thread of its own: the agent keeps serving other calls meanwhile.
            threading.Thread(target=self.answer, args=(seq, op, args), daemon=True).start()
            return
        self.answer(seq, op, args)

    def answer(self, seq, op, args):
        fn = getattr(self, "op_" + op, None)
        try:
            if fn is None:
                raise ValueError(f"the guest agent has no operation {op!r}")
            self.send(("ok", seq, fn(*args)))
        except OSError as e:
            self.send(("oserror", seq, e.errno or 0, e.strerror or str(e),
                       e.filename if isinstance(e.filename, str) else None))
        except Exception as e:  # bad arguments: the host re-raises the same kind of error
            self.send(("error", seq, type(e).__name__, str(e)))

    def forward_event(self, fd):
        try:
            count = int.from_bytes(os.read(fd, 8), "little")
        except BlockingIOError:
            return
        self.send(("event", fd, count))

    def serve(self):
        while True:
            poller = select.poll()
            poller.register(self.port, select.POLLIN)
            for fd in self.watched:
                poller.register(fd, select.POLLIN)
            for fd, _ in poller.poll():
                if fd == self.port:
                    data = os.read(self.port, 1 << 16)
                    if not data:  # host side not connected: wait for it
                        select.select([], [], [], 0.05)
                        continue
                    for seq, op, args in self.reader.feed(data):
                        self.handle(seq, op, args)
                elif fd in self.watched:
                    self.forward_event(fd)


def wait_for_vfio_modules(marker="/run/vfio-loaded", timeout=60):
    """init loads the VFIO modules while this Python starts; answer only once they are in."""
    for _ in range(int(timeout / 0.01)):
        if os.path.exists(marker):
            return
        select.select([], [], [], 0.01)
    print("vfiolab agent: the VFIO modules did not load; serving anyway", file=sys.stderr)


if __name__ == "__main__":
    agent = Agent(find_port())
    wait_for_vfio_modules()
    agent.serve()
