"""vfio-platform and vfio-amba devices (drivers/vfio/platform/vfio_platform_common.c, _irq.c).

Regions are the device-tree node's `reg` entries: READ|WRITE, and MMAP when address and size are
page aligned. IRQs are its `interrupts`: count 1, EVENTFD, and MASKABLE|AUTOMASKED when
level-triggered. A reset handler is looked up by the first compatible string among the loaded reset
modules, then once more after request_module("vfio-reset:<compatible>") (vfio_platform_get_reset);
it runs on open, on close and on VFIO_DEVICE_RESET, and DEVICE_FLAGS_RESET is set only with one.
Its messages carry vfio_platform_common.c's dev_fmt prefix "VFIO: " (seen on the qemu board).
vfio-platform will not bind a device without one while its module parameter reset_required is set
("No reset function found for device ..."); vfio-amba never requires one. Before 6.3
(168a9c91fe0a, "vfio/platform: Fix reset_required behaviour") vfio_platform_init_common returned
the lookup's -ENOENT even with reset_required=0, so such a device did not bind either; checked in
Debian's linux-source-6.1 6.1.192-3.

Known difference: the same 6.1 code makes vfio-amba's probe fail for every AMBA device (none has a
reset module); the sim lets vfio-amba bind on every version, because labs 01 and 02 are built on
it. Since 6.18 the first vfio-amba probe and the first Calxeda reset print a DEPRECATION error.
"""
import errno
import struct

from vfiolab import uapi

from . import reset as resets
from . import uapi_layouts as L
from .errors import kernel_error
from .eventfds import EventfdCtx
from .userbuf import user_pointer
from .vfio_device import PAGE_SIZE, Region, VfioDevice, region_info, validate_irq_set


class PlatformIrq:
    """struct vfio_platform_irq: one interrupt index and what VFIO did with it."""

    def __init__(self, vdev, index, interrupt):
        self.vdev, self.index, self.hwirq = vdev, index, interrupt.hwirq
        self.flags = uapi.VFIO_IRQ_INFO_EVENTFD
        if interrupt.level:
            self.flags |= uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
        self.count = 1
        self.trigger = None            # EventfdCtx
        self.masked = False
        self.mask_virqfd = None        # eventfds that mask / unmask when signalled
        self.unmask_virqfd = None
        self.fired = 0

    @property
    def interrupts(self):
        return self.vdev.board.interrupts

    # vfio_platform_mask / _unmask: disable_irq_nosync / enable_irq
    def mask(self):
        if not self.masked:
            self.interrupts.disable(self.vdev.device, self.index)
            self.masked = True

    def unmask(self):
        if self.masked:
            self.masked = False
            self.interrupts.enable(self.vdev.device, self.index)

    def handler(self):
        """vfio_automasked_irq_handler / vfio_irq_handler."""
        if self.flags & uapi.VFIO_IRQ_INFO_AUTOMASKED:
            if self.masked:
                return
            self.mask()
        self.fired += 1
        if self.trigger is not None:
            self.trigger.signal(1)

    def set_trigger(self, fd):
        """vfio_set_trigger: free the old eventfd and IRQ, then request with the new one."""
        if self.trigger is not None:
            self.interrupts.free(self.vdev.device, self.index)
            self.trigger.put()
            self.trigger = None
        if fd < 0:
            return 0
        self.trigger = EventfdCtx(fd)
        self.interrupts.request(self.vdev.device, self.index, self.handler, disabled=self.masked)
        return 0

    def service_virqfds(self):
        if self.mask_virqfd is not None and self.mask_virqfd.consume():
            self.mask()
        if self.unmask_virqfd is not None and self.unmask_virqfd.consume():
            self.unmask()

    def cleanup(self):
        """vfio_platform_irq_cleanup."""
        for attr in ("mask_virqfd", "unmask_virqfd"):
            ctx = getattr(self, attr)
            if ctx is not None:
                ctx.put()
                setattr(self, attr, None)
        self.set_trigger(-1)


class PlatformVfioDevice(VfioDevice):
    """A device bound to vfio-platform (flavour "platform") or vfio-amba ("amba")."""

    def __init__(self, board, device, flavour):
        super().__init__(board, device)
        self.flavour = flavour
        self.flags = uapi.VFIO_DEVICE_FLAGS_AMBA if flavour == "amba" else uapi.VFIO_DEVICE_FLAGS_PLATFORM
        self.compat = device.compatible[0] if device.compatible else ""
        self.reset_handler = None      # (module, fn) once init_common found one
        self.reset_module = None       # the reset module this device holds a reference on
        self.reset_required = (board.kernel_modules.param("vfio_platform", "reset_required")
                               if flavour == "platform" else False)
        self._regions = []
        self.irqs = []

    def init_common(self):
        """vfio_platform_init_common's reset part: 0, or -ENOENT when the probe must fail."""
        found = resets.lookup(self.board, self.compat)
        if found is None:
            self.board.kernel_modules.request_module(f"vfio-reset:{self.compat}")
            found = resets.lookup(self.board, self.compat)
        if found is not None:
            self.reset_handler, self.reset_module = found, found[0]
            return 0
        if self.reset_required:
            self.board.log(f"vfio-{self.flavour} {self.device.name}: VFIO: No reset function found "
                           f"for device {self.device.name}")
            return -errno.ENOENT
        if self.flavour == "platform" and not self.board.since("platform_reset_optional"):
            return -errno.ENOENT        # 6.1: the lookup's result, whatever reset_required says
        return 0

    # --- open / close ---------------------------------------------------------------------------
    def open_device(self):
        """vfio_platform_open_device: regions, IRQs, then a reset that must work if required."""
        self._regions = self._build_regions()
        self.irqs = [PlatformIrq(self, i, irq) for i, irq in enumerate(self.device.interrupts)]
        rc = self.call_reset()
        if rc and self.reset_required:
            self.board.log(f"vfio-{self.flavour} {self.device.name}: VFIO: reset driver is required "
                           f"and reset call failed in open ({rc}) ")
            self._cleanup()
            raise kernel_error(-rc, "vfio_platform_open_device: reset failed")

    def close_device(self):
        """vfio_platform_close_device: reset, then release regions and IRQs."""
        self.call_reset()
        self._cleanup()

    def _cleanup(self):
        for irq in self.irqs:
            irq.cleanup()
        self.irqs = []
        self._regions = []

    def call_reset(self):
        """vfio_platform_call_reset: 0, or -EINVAL with no reset function."""
        if self.reset_handler is None:
            self.board.log(f"vfio-{self.flavour} {self.device.name}: VFIO: no reset function found!")
            return -errno.EINVAL
        module, handler = self.reset_handler
        self.board.log(f"vfio-{self.flavour} {self.device.name}: VFIO: reset")
        return handler(resets.ModelRegisters(self.device.model), self)

    def _build_regions(self):
        out = []
        model = self.device.model
        for index, (address, size) in enumerate(self.device.regions):
            flags = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
            if address % PAGE_SIZE == 0 and size % PAGE_SIZE == 0:
                flags |= uapi.VFIO_REGION_INFO_FLAG_MMAP
            out.append(Region(index, size, flags,
                              read=lambda off, n, i=index: model.mmio_read(i, off, n),
                              write=lambda off, n, v, i=index: model.mmio_write(i, off, n, v),
                              mmap_ok=True))
        return out

    def regions(self):
        return self._regions

    # --- ioctls ---------------------------------------------------------------------------------
    def ioctl(self, request, arg):
        if request == uapi.VFIO_DEVICE_GET_INFO:
            return self.get_info(user_pointer(arg, "VFIO_DEVICE_GET_INFO"))
        if request == uapi.VFIO_DEVICE_GET_REGION_INFO:
            return region_info(self, user_pointer(arg, "VFIO_DEVICE_GET_REGION_INFO"))
        if request == uapi.VFIO_DEVICE_GET_IRQ_INFO:
            return self.irq_info(user_pointer(arg, "VFIO_DEVICE_GET_IRQ_INFO"))
        if request == uapi.VFIO_DEVICE_SET_IRQS:
            return self.set_irqs(user_pointer(arg, "VFIO_DEVICE_SET_IRQS"))
        if request == uapi.VFIO_DEVICE_RESET:
            rc = self.call_reset()
            if rc:
                raise kernel_error(-rc, "vfio_platform_call_reset: this device has no reset function")
            return 0
        raise kernel_error(errno.ENOTTY, f"vfio_platform_ioctl: unknown request {request:#x}")

    def get_info(self, buf):
        argsz = struct.unpack_from("<I", buf.read(0, L.DEVICE_INFO_MINSZ))[0]
        if argsz < L.DEVICE_INFO_MINSZ:
            raise kernel_error(errno.EINVAL, "vfio_platform_ioctl: argsz is smaller than vfio_device_info")
        flags = self.flags | (uapi.VFIO_DEVICE_FLAGS_RESET if self.reset_handler else 0)
        buf.write(4, struct.pack("<III", flags, len(self._regions), len(self.irqs)))
        return 0

    def irq_info(self, buf):
        argsz, _flags, index = struct.unpack_from("<III", buf.read(0, L.IRQ_INFO_MINSZ))
        if argsz < L.IRQ_INFO_MINSZ:
            raise kernel_error(errno.EINVAL, "vfio_platform_ioctl: argsz is smaller than vfio_irq_info")
        if index >= len(self.irqs):
            raise kernel_error(errno.EINVAL, f"GET_IRQ_INFO: no IRQ {index} (the device has {len(self.irqs)})")
        irq = self.irqs[index]
        buf.write(4, struct.pack("<III", irq.flags, index, irq.count))
        return 0

    def set_irqs(self, buf):
        """vfio_platform_set_irqs_ioctl: validated against the number of IRQ indexes."""
        n = len(self.irqs)
        flags, index, start, count, data = validate_irq_set(buf, n, n)
        action = flags & uapi.VFIO_IRQ_SET_ACTION_TYPE_MASK
        handlers = {uapi.VFIO_IRQ_SET_ACTION_MASK: self._set_mask,
                    uapi.VFIO_IRQ_SET_ACTION_UNMASK: self._set_unmask,
                    uapi.VFIO_IRQ_SET_ACTION_TRIGGER: self._set_trigger}
        func = handlers.get(action)
        if func is None:
            raise kernel_error(errno.ENOTTY, "vfio_platform_set_irqs_ioctl: exactly one ACTION_ flag")
        return func(self.irqs[index], start, count, flags, data)

    def _set_mask(self, irq, start, count, flags, data):
        """vfio_platform_set_irq_mask."""
        return self._mask_or_unmask("mask", irq, start, count, flags, data)

    def _set_unmask(self, irq, start, count, flags, data):
        """vfio_platform_set_irq_unmask."""
        return self._mask_or_unmask("unmask", irq, start, count, flags, data)

    def _mask_or_unmask(self, which, irq, start, count, flags, data):
        if start != 0 or count != 1:
            raise kernel_error(errno.EINVAL, f"vfio_platform_set_irq_{which}: start 0, count 1")
        if not irq.flags & uapi.VFIO_IRQ_INFO_MASKABLE:
            raise kernel_error(errno.EINVAL, f"vfio_platform_set_irq_{which}: this IRQ is not maskable")
        return self._mask_action(irq, flags, data, getattr(irq, which), f"{which}_virqfd")

    def _mask_action(self, irq, flags, data, action, virqfd_attr):
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            fd = struct.unpack("<i", data)[0]
            old = getattr(irq, virqfd_attr)
            if old is not None:
                old.put()
                setattr(irq, virqfd_attr, None)
            if fd >= 0:
                setattr(irq, virqfd_attr, EventfdCtx(fd))      # vfio_virqfd_enable
            return 0
        if flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0":
            action()
        return 0

    def _set_trigger(self, irq, start, count, flags, data):
        """vfio_platform_set_irq_trigger."""
        if not count and flags & uapi.VFIO_IRQ_SET_DATA_NONE:
            return irq.set_trigger(-1)
        if start != 0 or count != 1:
            raise kernel_error(errno.EINVAL, "vfio_platform_set_irq_trigger: start 0, count 1")
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            return irq.set_trigger(struct.unpack("<i", data)[0])
        if flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0":
            irq.handler()        # a loopback: fire as if the line had
        return 0

    def service(self):
        for irq in self.irqs:
            irq.service_virqfds()
