"""The QEMU process behind a qemu board: command line, start, console log, and a sure death.

QEMU never outlives the Python that started it: it runs in its own process group (a Ctrl-C in a
terminal does not reach it, close() does) and with PR_SET_PDEATHSIG=SIGKILL, so the kernel kills it
when its parent dies for any reason (a notebook kernel restarted or killed, kill -9).
Guest RAM is a memfd shared with this process: DMA buffers the guest allocates are mapped here too.
"""
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from .. import BoardUnavailable
from . import accel as accelerators
from . import image as guest_image

RAM_BASE = 0x40000000  # guest-physical address of RAM on QEMU's virt machine
PR_SET_PDEATHSIG = 1
GICS = {"its": "gic-version=3,its=on", "v2m": "gic-version=2"}


def runtime_base():
    """Where live boards keep their sockets and console logs (`vfiolab console` looks here)."""
    return os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()


def _die_with_parent(parent_pid):
    """Runs in the child between fork and exec: SIGKILL when the parent dies.

    prctl is looked up before the fork: the child of a threaded parent (a notebook kernel) must not
    take the dynamic loader's locks. The death signal follows the forking *thread*: open boards
    from the main thread (as notebooks do).
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup():
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return setup


class Machine:
    def __init__(self, gic="its", allow_unsafe_interrupts=False, memory_mib=512, cpus=1,
                 share_dir=None, extra_args=(), virtualization=None, accel=None):
        if gic not in GICS:
            raise ValueError(f"gic must be one of {', '.join(GICS)}, not {gic!r}")
        self.qemu = shutil.which("qemu-system-aarch64")
        if not self.qemu:
            raise BoardUnavailable("qemu-system-aarch64 is not installed: sudo apt install "
                                   "qemu-system-arm", "qemu")
        self.gic, self.unsafe = gic, allow_unsafe_interrupts
        self.memory = memory_mib << 20
        self.cpus = cpus
        self.share_dir = share_dir
        self.extra_args = list(extra_args)
        # KVM on an aarch64 host that has it, else TCG (accel.py). virtualization=on starts the guest
        # at EL2, so its kernel has KVM (/dev/kvm) for lab 03: TCG only. None: on wherever it can be.
        self.accel = accel or accelerators.choose(virtualization)
        self.virtualization = self.accel.name == "tcg" if virtualization is None else virtualization
        self.dtb_editor = None       # (command, rundir, pass_fds) -> a DTB path to boot with
        self.proc = None
        self.rundir = None
        self.ram_fd = None

    @property
    def console_log(self):
        return os.path.join(self.rundir, "console.log")

    @property
    def console_socket(self):
        return os.path.join(self.rundir, "console.sock")

    @property
    def agent_socket(self):
        return os.path.join(self.rundir, "agent.sock")

    def command(self, image):
        # nokaslr and mitigations=off spare TCG the page-table isolation KASLR forces on (KPTI):
        # about 0.5 s of a boot, and every system call after it. cryptomgr.notests skips the
        # crypto self-tests (a few hundred ms of emulated CPU) that nothing here relies on.
        append = ("console=ttyAMA0 rdinit=/init quiet panic=-1 audit=0 nokaslr mitigations=off "
                  "cryptomgr.notests")
        if self.unsafe:
            append += " vfiolab_unsafe=1"  # init passes allow_unsafe_interrupts=1 to vfio_iommu_type1
        return [
            self.qemu, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-M", f"virt,{GICS[self.gic]},iommu=smmuv3,memory-backend=ram"
                  + (",virtualization=on" if self.virtualization else ""),
            "-accel", self.accel.name, "-cpu", "host" if self.accel.name == "kvm" else "cortex-a57",
            "-smp", str(self.cpus), "-m", f"{self.memory >> 20}M",
            "-object", f"memory-backend-file,id=ram,size={self.memory >> 20}M,"
                       f"mem-path=/proc/self/fd/{self.ram_fd},share=on",
            "-kernel", image.kernel, "-initrd", image.initramfs, "-append", append,
            "-chardev", f"socket,id=console,path={self.console_socket},server=on,wait=off,"
                        f"logfile={self.console_log}",
            "-serial", "chardev:console",
            "-device", "virtio-serial-device",
            "-chardev", f"socket,id=agent,path={self.agent_socket},server=on,wait=off",
            "-device", f"virtserialport,chardev=agent,name={guest_image.AGENT_PORT}",
            "-fsdev", f"local,id=src,path={self.share_dir},security_model=none,readonly=on",
            "-device", f"virtio-9p-device,fsdev=src,mount_tag={guest_image.SHARE_TAG}",
            "-device", "edu,addr=1",
            # A second edu and a virtio-rng that virtio_pci drives, as two functions of one
            # multi-function slot (00:03.0 and 00:03.1). Conventional PCI functions have no ACS to
            # keep them apart, so Linux puts both in one IOMMU group (lab 01's viability lesson).
            "-device", "edu,addr=3.0,multifunction=on",
            "-device", "virtio-rng-pci,addr=3.1,multifunction=on",
            *self.extra_args]

    def start(self, image):
        self.rundir = tempfile.mkdtemp(prefix=f"vfiolab-qemu-{os.getpid()}-", dir=runtime_base())
        self.ram_fd = os.memfd_create("vfiolab-guest-ram")
        os.ftruncate(self.ram_fd, self.memory)
        with open(os.path.join(self.rundir, "owner"), "w") as f:
            f.write(f"{os.getpid()}\n")
        command = self.command(image)
        if self.dtb_editor is not None:
            command += ["-dtb", self.dtb_editor(command, self.rundir, (self.ram_fd,))]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.rundir, "qemu.stderr"), "wb"),
            pass_fds=[self.ram_fd], start_new_session=True, preexec_fn=_die_with_parent(os.getpid()))
        with open(os.path.join(self.rundir, "qemu.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")

    def connect_agent(self, timeout=10):
        """A socket to the agent's virtio-serial port, once QEMU listens on it."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"QEMU exited at start (status {self.proc.returncode}):\n"
                                   + self.qemu_stderr())
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(self.agent_socket)
                return sock
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("QEMU did not open its agent socket in time")
                time.sleep(0.01)

    def qemu_stderr(self, first=False):
        """What QEMU wrote on stderr: its last 2000 characters, or with first=True its first."""
        try:
            text = open(os.path.join(self.rundir, "qemu.stderr"), errors="replace").read()
        except (OSError, TypeError):
            return ""
        return text[:2000] if first else text[-2000:]

    def console_tail(self, lines=25):
        try:
            with open(self.console_log, "rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - 16384))
                text = f.read().decode(errors="replace").replace("\r", "")
        except (OSError, TypeError):
            return "(no console output)"
        return "\n".join(text.splitlines()[-lines:])

    def console_grep(self, text):
        """The last console line containing `text`, or None."""
        try:
            with open(self.console_log, "rb") as f:
                lines = f.read().decode(errors="replace").replace("\r", "").splitlines()
        except OSError:
            return None
        found = [line for line in lines if text in line]
        return found[-1] if found else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=3):
        """SIGTERM (QEMU's clean exit), SIGKILL if it lingers; then remove the run directory."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.terminate()
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        if self.ram_fd is not None:
            os.close(self.ram_fd)
            self.ram_fd = None
        if self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
            self.rundir = None
