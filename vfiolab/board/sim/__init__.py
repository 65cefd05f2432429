"""The sim board: an in-process model of the Linux kernel a VFIO driver talks to.

    with vfiolab.open_board("sim", gic="its") as board:      # or gic="v2m"
        board.sysfs_write("/sys/bus/amba/devices/2c0a0000.dma/driver_override", "vfio-amba")
        ...

Options (keywords):
    gic="its" | "v2m"             MSI controller: GICv3 ITS (isolated MSIs) or a GICv2m frame
    allow_unsafe_interrupts=False  vfio_iommu_type1's module parameter of that name
    layout="fvp" | "virt"          the SoC: FVP-style (fvp.dts) or the qemu virt twin (virt.dts)
    reset_required=True            vfio_platform's module parameter of that name
    missing_modules=()             modules not installed (e.g. "vfio_platform_calxedaxgmac"): modprobe
                                   and vfio-platform's request_module find nothing
    kernel=(6, 1)                  which Linux to answer as, where answers changed between versions:
                                   6.1 is Debian 12's, the kernel the qemu board runs (see KERNEL_CHANGES)
    dts=None                       path of another device tree source to boot instead

The board is built in layers, one module each: devicetree (parse the .dts), topology (devices,
buses, IOMMU groups), drivers (binding rules), sysfs/vfs (the files), vfio_* (container, group,
device, type1), iommu (the C SMMU model), interrupts (lines and MSI doorbells), pci (config
space), devices/ (the hardware models and their plug-in interface), memory (alloc and pinning).
Kernel modules: board.modprobe(name, **params), board.rmmod(name), board.modules() (modules.py).
Beyond the contract: board.iommu_faults(), board.clear_iommu_faults(), board.dmesg() (one str, as
the host and qemu boards give it), board.model(name), board.device(name).

Checked against the real kernel: tests/scenarios.py passes unchanged on the qemu board (Debian's
6.1 arm64 kernel, edu through vfio-pci). Where the sim knowingly differs from a real kernel:
  - unbinding a device whose VFIO fd is open fails with EBUSY (the kernel blocks until the fd is
    closed, and signals the REQ IRQ); a sim call never blocks;
  - an int passed to an ioctl that takes a pointer is EFAULT (it would be a user address);
  - MAP_DMA accepts only board.alloc() memory (EFAULT otherwise), where the kernel pins any
    mapped page of the process;
  - IOMMU groups exist from boot; a 6.1 kernel with a modular SMMU driver makes a device's group
    when a driver first probes it (so unbound edu has no iommu_group link there yet);
  - a PCI function's `irq` attribute and PCI_INTERRUPT_LINE show the GIC INTID, not Linux's virq;
  - no dirty-page tracking, migration or low-power device features.
"""
import errno
import mmap as _mmap
import os
import select
import time

from . import devicetree
from .devices import DevicePort, model_for
from .drivers import DriverCore, host_drivers
from .errors import kernel_error
from .files import AttrFile, DirFile
from .interrupts import InterruptController
from .iommu import Smmu
from .kvm import KvmHost
from .memory import PAGE_SIZE, UserMemory
from .modules import Modules
from .pci import PciConfigs
from .sysfs import Sysfs
from .topology import Topology
from .userbuf import ioctl_arg
from .vfio_drivers import vfio_drivers
from .vfio_group import VfioRegistry
from .vfs import Attr, CharDevice, Dir, Vfs

HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUTS = {"fvp": os.path.join(HERE, "fvp.dts"), "virt": os.path.join(HERE, "virt.dts")}
GICS = ("its", "v2m")

# Where the kernel's answer depends on its version (the sim defaults to 6.1, the qemu board's):
KERNEL_CHANGES = {
    "set_container_not_a_container": ((6, 2), "EINVAL before, EBADFD since iommufd's compat (6.2)"),
    "aligned_capability_chain": ((6, 7), "vfio_info_cap_add aligns each capability to 8 bytes since 6.7"),
    "type1_nesting_extension": ((6, 7), "VFIO_TYPE1_NESTING_IOMMU reported until its removal"),
    "platform_reset_optional": ((6, 3), "vfio_platform_init_common returns 0 without a reset "
                                "function when reset_required=0 (168a9c91fe0a); 6.1 returns -ENOENT"),
    "platform_deprecated": ((6, 18), "vfio-amba and the platform reset modules print DEPRECATION"),
}
# Device work done per system call: up to ROUNDS steps of BUDGET cycles each, per device. Bounded,
# so a program that never ends (a DMALPFE loop with no peripheral) cannot hang a call.
SERVICE_ROUNDS, SERVICE_BUDGET = 16, 1 << 16


def _require_int(value, what):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")


def _require_offset(offset):
    """pread/pwrite's offset: None (the file position) or a non-negative int (EINVAL otherwise)."""
    if offset is not None:
        _require_int(offset, "offset")
        if offset < 0:
            raise kernel_error(errno.EINVAL, "negative offset")


class SimBoard:
    """The board contract (vfiolab.board) answered by a simulated kernel."""

    kind = "sim"

    def __init__(self, gic="its", allow_unsafe_interrupts=False, *, layout="fvp", reset_required=True,
                 kernel=(6, 1), dts=None, missing_modules=()):
        if gic not in GICS:
            raise ValueError(f"gic must be one of {GICS}, not {gic!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {tuple(LAYOUTS)}, not {layout!r}")
        if not (isinstance(kernel, tuple) and len(kernel) == 2 and all(isinstance(v, int) for v in kernel)):
            raise TypeError(f"kernel must be a (major, minor) tuple such as (6, 1), not {kernel!r}")
        self.gic = gic
        self.layout = layout
        self.kernel = kernel
        self._unsafe_interrupts = bool(allow_unsafe_interrupts)
        self._reset_required = bool(reset_required)
        self._missing_modules = tuple(missing_modules)
        self._log = []
        self._booted = time.monotonic()
        self._faults_logged = 0
        self._files = {}          # fd -> File (sim files, each on a placeholder fd)
        self._held = set()        # devices whose clock is paused (hold())
        self._eventfds = set()    # real eventfds handed out by board.eventfd()
        self._mappings = []

        root = devicetree.load(dts or LAYOUTS[layout])
        self._select_msi_controller(root)
        self.topology = Topology(root)
        self.smmu = Smmu()
        self.memory = UserMemory()
        self.vfs = Vfs()
        self.pci = PciConfigs(self)
        self.interrupts = InterruptController(self, gic)
        for device in self.topology.devices:
            key = f"pci:{device.pci.vendor:04x}:{device.pci.device:04x}" if device.pci else ""
            device.model = model_for(device.node, key)
            device.model.attach(DevicePort(self, device))
            if device.stream is not None:
                self.smmu.stream_names.setdefault(device.stream, device.name)
        self._stream_devices = {}
        for device in self.topology.devices:
            if device.stream is not None:
                self._stream_devices.setdefault(device.stream, device)
        self.drivers = DriverCore(self, host_drivers() + vfio_drivers())
        self.sysfs = Sysfs(self)
        self.vfio = VfioRegistry(self)
        self.kernel_modules = Modules(self, {
            "vfio_iommu_type1": {"allow_unsafe_interrupts": self._unsafe_interrupts},
            "vfio_platform": {"reset_required": self._reset_required}}, self._missing_modules)
        self.kernel_modules.boot([d for d in self.drivers.drivers if d.is_vfio])
        self._misc_files()
        self.kvm = KvmHost(self)          # /dev/kvm
        self.log(f"Booting vfiolab sim ({layout}, GIC {gic}), {len(self.topology.groups)} IOMMU groups")
        self.drivers.boot()

    def _misc_files(self):
        """/dev/null and the kernel release, which tools and labs read."""
        from .files import NullFile
        self.vfs.add("/dev/null", CharDevice(lambda flags: NullFile()))
        release = f"{self.kernel[0]}.{self.kernel[1]}.0-vfiolab-sim\n"
        self.vfs.attr("/proc/sys/kernel/osrelease", show=lambda: release)
        self.vfs.attr("/proc/interrupts", show=self.interrupts.proc_interrupts)

    def _select_msi_controller(self, root):
        """Enable the ITS or the GICv2m frame, as firmware edits `status` before Linux boots."""
        for node in root.walk():
            if "arm,gic-v3-its" in node.compatible:
                node.properties["status"] = b"okay\0" if self.gic == "its" else b"disabled\0"
            if "arm,gic-v2m-frame" in node.compatible:
                node.properties["status"] = b"okay\0" if self.gic == "v2m" else b"disabled\0"

    # --- kernel modules (modules.py) -----------------------------------------------------------
    @property
    def kernel_release(self):
        return f"{self.kernel[0]}.{self.kernel[1]}.0-vfiolab-sim"

    def modprobe(self, name, **params):
        """Load a module and its dependencies with module parameters (modprobe name p=v ...)."""
        self.service()
        return self.kernel_modules.modprobe(name, params)

    def rmmod(self, name):
        self.service()
        self.kernel_modules.rmmod(name)

    def modules(self):
        """{name: {"params": {...}, "refcount": n, "used_by": [...]}} of the loaded modules."""
        return self.kernel_modules.listing()

    @property
    def allow_unsafe_interrupts(self):
        return self.kernel_modules.param("vfio_iommu_type1", "allow_unsafe_interrupts")

    @property
    def reset_required(self):
        return self.kernel_modules.param("vfio_platform", "reset_required")

    # --- kernel plumbing used by the layers ---------------------------------------------------
    def since(self, change):
        """True when the simulated kernel has the change named in KERNEL_CHANGES."""
        return self.kernel >= KERNEL_CHANGES[change][0]

    def log(self, text):
        """printk: one line in the kernel log, stamped with seconds since boot."""
        self._log.append((time.monotonic() - self._booted, text))

    def char_device(self, opener):
        return CharDevice(opener)

    def install(self, file):
        """Give a sim file an fd number of its own (a placeholder on /dev/null)."""
        fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._files[fd] = file
        return fd

    def fd_object(self, fd):
        """The File behind fd; "foreign" for a real fd the sim does not own; None if not open."""
        if not isinstance(fd, int) or fd < 0:
            return None
        if fd in self._files:
            return self._files[fd]
        try:
            os.fstat(fd)
        except OSError:
            return None
        return "foreign"

    def msi_pages_for(self, device):
        """IOVA page -> doorbell page mapped in the device's domain (empty without a container)."""
        group = self._vfio_group_of(device)
        container = group.container if group else None
        if container is None or container.iommu is None:
            return {}
        return container.iommu.msi_pages

    def _log_faults(self):
        """Log new SMMU faults as the SMMU driver does (arm_smmu_evtq_thread for SMMUv3,
        arm_smmu_context_fault for SMMUv2 / MMU-500), so dmesg shows them as on real hardware."""
        from vfiolab._hw import lib
        total = lib.vfl_smmu_fault_count(self.smmu._ptr)
        if total < self._faults_logged:
            self._faults_logged = 0                       # the log was cleared
        new = total - self._faults_logged
        if not new:
            return
        self._faults_logged = total
        smmu = next((d for d in self.topology.devices
                     if {"arm,smmu-v3", "arm,mmu-500", "arm,smmu-v2"} & set(d.compatible)), None)
        name = smmu.name if smmu else "smmu"
        if smmu is not None and "arm,smmu-v3" in smmu.compatible:
            self.interrupts.smmu_events(new)
        for f in self.smmu.faults()[-new:]:
            if smmu is not None and "arm,smmu-v3" in smmu.compatible:
                code = {"no domain": 0x04, "translation": 0x10, "permission": 0x13}.get(f.reason, 0x10)
                words = [code | f.stream << 32, (1 << 35) if f.access != "write" else 0, f.iova, 0]
                self.log(f"arm-smmu-v3 {name}: event 0x{code:02x} received:")
                for word in words:
                    self.log(f"arm-smmu-v3 {name}: \t0x{word:016x}")
            else:
                fsr = 0x8 if f.reason == "permission" else 0x2           # PF or TF
                fsynr = 0x10 if f.access == "write" else 0x0             # FSYNR0.WNR
                self.log(f"arm-smmu {name}: Unhandled context fault: fsr=0x{fsr:x}, iova=0x{f.iova:08x}, "
                         f"fsynr=0x{fsynr:x}, cbfrsynra=0x{f.stream:x}, cb=0")

    def ring_doorbells(self):
        """Deliver the DMA writes that reached MSI doorbell pages (see interrupts.py), and log
        the faults the latest accesses caused."""
        self._log_faults()
        for stream, iova, data in self.smmu.take_doorbell_writes():
            device = self._stream_devices.get(stream)
            target = self.msi_pages_for(device).get(iova & ~0xFFF) if device else None
            if target is not None:
                self.interrupts.ring(device, target + (iova & 0xFFF), int.from_bytes(data[:4], "little"))

    def service(self):
        """What the kernel does asynchronously, done at each call: virqfds, queued device work.
        True while some device still has work queued."""
        for group in self.vfio.groups.values():
            for vdev in group.devices:
                vdev.service()
        busy = False
        for device in self.topology.devices:
            if device.name in self._held:
                continue                    # paused: a widget steps it by hand
            for _ in range(SERVICE_ROUNDS):
                if not device.model.step(SERVICE_BUDGET):
                    break
            else:
                busy = True
        self.ring_doorbells()
        self.kvm.service()                # irqfds whose eventfds were signalled inject now
        return busy

    def _file(self, fd):
        _require_int(fd, "fd")
        file = self._files.get(fd)
        if file is None:
            raise kernel_error(errno.EBADF, f"fd {fd} is not a file of this board")
        return file

    # --- the contract: files ------------------------------------------------------------------
    def open(self, path, flags=os.O_RDWR):
        _require_int(flags, "flags")
        self.service()
        try:
            node, real = self.vfs.lookup(path)
        except OSError as e:
            if e.errno == errno.ENOENT and flags & os.O_CREAT and path.startswith("/sys/"):
                raise kernel_error(errno.EACCES, "sysfs files cannot be created", path) from None
            raise
        access = flags & os.O_ACCMODE
        reading = access in (os.O_RDONLY, os.O_RDWR)
        writing = access in (os.O_WRONLY, os.O_RDWR)
        if isinstance(node, CharDevice):
            return self.install(node.opener(flags))
        if isinstance(node, Dir):
            if writing:
                raise kernel_error(errno.EISDIR, None, path)
            return self.install(DirFile(real))
        if isinstance(node, Attr):
            if (reading and node.show is None) or (writing and node.store is None):
                raise kernel_error(errno.EACCES, None, path)     # kernfs_fop_open
            return self.install(AttrFile(self.vfs, real, reading, writing))
        raise kernel_error(errno.ENXIO, None, path)

    def close(self, fd=None):
        """close(fd) closes one file; close() with no fd closes the board (as `with` does)."""
        if fd is None:
            return self.shutdown()
        _require_int(fd, "fd")
        if fd in self._eventfds:
            self._eventfds.discard(fd)
            os.close(fd)
            return
        file = self._file(fd)
        del self._files[fd]
        os.close(fd)
        file.release()

    def ioctl(self, fd, request, arg=0):
        _require_int(request, "ioctl request")
        arg = ioctl_arg(arg)
        _require_int(fd, "fd")
        if fd in self._eventfds:
            raise kernel_error(errno.ENOTTY, "an eventfd has no ioctls")
        file = self._file(fd)
        self.service()
        return file.ioctl(request, arg)

    def read(self, fd, n, offset=None):
        _require_int(n, "n")
        _require_offset(offset)
        if n < 0:
            raise kernel_error(errno.EINVAL, "negative count")
        _require_int(fd, "fd")
        if fd in self._eventfds:
            return os.read(fd, n) if offset is None else os.pread(fd, n, offset)
        file = self._file(fd)
        self.service()
        return file.read(n, offset)

    def write(self, fd, data, offset=None):
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
        _require_offset(offset)
        _require_int(fd, "fd")
        if fd in self._eventfds:
            return os.write(fd, data) if offset is None else os.pwrite(fd, data, offset)
        file = self._file(fd)
        self.service()
        return file.write(bytes(data), offset)

    def mmap(self, fd, length, offset=0, *, prot=_mmap.PROT_READ | _mmap.PROT_WRITE, flags=_mmap.MAP_SHARED):
        """mmap(2) of a region: length rounds up to pages; offset must be page aligned."""
        _require_int(length, "length")
        _require_int(offset, "offset")
        _require_int(fd, "fd")
        if length <= 0 or offset < 0 or offset % PAGE_SIZE:
            raise kernel_error(errno.EINVAL, "mmap: length must be > 0 and offset page aligned")
        if fd in self._eventfds:
            raise kernel_error(errno.ENODEV, "an eventfd cannot be mapped")
        file = self._file(fd)
        mapping = file.mmap(length, offset, prot, flags)
        self._mappings.append(mapping)
        return mapping

    # --- the contract: events -----------------------------------------------------------------
    def eventfd(self, initval=0, flags=os.EFD_CLOEXEC):
        fd = os.eventfd(initval, flags)
        self._eventfds.add(fd)
        return fd

    def poll(self, fds, timeout_ms=None):
        """The fds (of `fds`, in order) that are readable within timeout_ms (None: wait forever).
        Device work and virqfds are serviced first, so an interrupt already due is seen."""
        fds = list(fds)
        for fd in fds:
            _require_int(fd, "fd")
        if timeout_ms is not None:
            _require_int(timeout_ms, "timeout_ms")
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN)
        deadline = None if timeout_ms is None or timeout_ms < 0 else time.monotonic() + timeout_ms / 1000
        # Devices keep working while we wait, as hardware would: poll in slices while they are busy.
        while True:
            busy = self.service()
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            ready = dict(poller.poll(0 if busy else left))
            if ready or not busy or left == 0:
                break
        bad = [fd for fd, ev in ready.items() if ev & select.POLLNVAL]
        if bad:
            raise kernel_error(errno.EBADF, f"fd {bad[0]} is not open")
        return [fd for fd in fds if ready.get(fd, 0) & (select.POLLIN | select.POLLERR | select.POLLHUP)]

    # --- the contract: memory and sysfs -------------------------------------------------------
    def alloc(self, size):
        return self.memory.alloc(size)

    def listdir(self, path):
        return self.vfs.listdir(path)

    def readlink(self, path):
        return self.vfs.readlink(path)

    def sysfs_read(self, path):
        return self.vfs.read(path).decode(errors="replace")

    def sysfs_write(self, path, text):
        if isinstance(text, str):
            data = text.encode()
        elif isinstance(text, (bytes, bytearray)):
            data = bytes(text)
        else:
            raise TypeError(f"sysfs_write text must be a str or bytes, not {type(text).__name__}")
        self.service()
        return self.vfs.write(path, data)

    # --- beyond the contract: what the sim can show ------------------------------------------
    def iommu_faults(self):
        """Every IOMMU fault so far: (stream, device, iova, length, access, reason), oldest first."""
        return self.smmu.faults()

    def clear_iommu_faults(self):
        self.smmu.clear_faults()

    def dmesg(self):
        """The kernel log as `dmesg` prints it (one str, like the qemu board's): probes, binds,
        VFIO's warnings (e.g. the unsafe-interrupts refusal)."""
        return "".join(f"[{t:12.6f}] {text}\n" for t, text in self._log)

    def device(self, name):
        """The topology's Device called name (any bus), or None."""
        return next((d for d in self.topology.devices if d.name == name), None)

    def _known_device(self, name):
        device = self.device(name)
        if device is None:
            raise KeyError(f"no device {name!r} on this board")
        return device

    def _vfio_group_of(self, device):
        """The VFIO group holding device's IOMMU group (None until a VFIO driver binds one of its devices)."""
        return self.vfio.groups.get(device.group.id) if device.group is not None else None

    def hold(self, name, held=True):
        """Pause device `name`'s clock: board calls no longer run its queued work, so a widget can
        step it (e.g. a PL330 copy that a driver started) and show every cycle. hold(name, False)
        lets it run again."""
        self.model(name)                    # KeyError for an unknown device
        (self._held.add if held else self._held.discard)(name)

    def iommu_mappings(self, name):
        """[(iova, size, prot)] the IOMMU holds for device `name`'s container, in IOVA order: [] when
        its group is in no container (or none with an IOMMU set). A real kernel keeps these to itself."""
        device = self._known_device(name)
        group = self._vfio_group_of(device)
        container = group.container if group else None
        iommu = container.iommu if container else None
        return [(d.iova, d.size, d.prot) for d in iommu.dmas] if iommu else []

    def iommu_msi_mappings(self, name):
        """[(iova, size, doorbell page, prot)] of the MSI doorbell pages the kernel mapped into
        device `name`'s domain (iommu_dma_prepare_msi, once its MSIs are enabled), in IOVA order;
        [] without a container. Kept apart from iommu_mappings(): MAP_DMA did not make these."""
        device = self._known_device(name)
        group = self._vfio_group_of(device)
        iommu = group.container.iommu if group and group.container else None
        if iommu is None:
            return []
        prot = {iova: p for iova, _, _, p in iommu.domain.mappings()}
        return [(iova, 0x1000, page, prot.get(iova, 0)) for iova, page in sorted(iommu.msi_pages.items())]

    def dma_writes(self, name):
        """[(iova, length)] device `name` has written by DMA so far (through its SMMU stream),
        merged and in IOVA order: what a check needs to tell the device's work from bytes the CPU
        put in a buffer. A real kernel keeps no such record."""
        device = self._known_device(name)
        return self.smmu.written(device.stream) if device.stream is not None else []

    def vfio_irq_masked(self, name, index):
        """Whether VFIO holds device `name`'s interrupt `index` masked (vfio-platform's automasked
        level IRQs stay masked from the interrupt until VFIO_DEVICE_SET_IRQS unmasks them). A real
        kernel shows this only as a disabled line; the labs' checks read it here."""
        device = self._known_device(name)
        group = self._vfio_group_of(device)
        vdev = next((v for v in (group.devices if group else []) if v.device is device), None)
        irqs = getattr(vdev, "irqs", None)
        if not irqs:
            raise LookupError(f"{name} is not open through vfio-platform: no VFIO interrupt state")
        if not 0 <= index < len(irqs):
            raise IndexError(f"{name} has VFIO interrupts 0..{len(irqs) - 1}, not {index}")
        return irqs[index].masked

    def model(self, name):
        """The hardware model behind device `name` (e.g. "2c0a0000.dma")."""
        return self._known_device(name).model

    def xgmac_wire(self, name):
        """The wire at xgmac `name`'s port: .frames_sent(), .inject(frame), .clear()."""
        wire = getattr(self._known_device(name).model, "wire", None)
        if wire is None:
            raise ValueError(f"{name} is not an xgmac: it has no wire")
        return wire

    # --- lifetime -----------------------------------------------------------------------------
    def shutdown(self):
        """Close every fd (devices, then groups, then containers) and free memory."""
        from .vfio_device import DeviceFile
        from .vfio_group import GroupFile
        order = lambda item: 0 if isinstance(item[1], DeviceFile) else 1 if isinstance(item[1], GroupFile) else 2
        for fd, _file in sorted(self._files.items(), key=order):
            try:
                self.close(fd)
            except OSError:
                pass
        for fd in list(self._eventfds):
            self.close(fd)
        for mapping in self._mappings:
            mapping.close()
        self._mappings = []
        self.memory.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def __repr__(self):
        return f"<SimBoard {self.layout}, GIC {self.gic}: {len(self.topology.devices)} devices, {len(self._files)} open files>"
