"""vfio-pci devices (drivers/vfio/pci/vfio_pci_core.c, vfio_pci_intrs.c, vfio_pci_config.c).

Regions: BAR0..5 (size 0 and no flags when absent), ROM, config space (256 bytes for a
conventional function), VGA (GET_REGION_INFO: EINVAL without VGA). IRQ indexes: INTx (count 1
with a pin; EVENTFD|MASKABLE|AUTOMASKED), MSI (count from the capability; EVENTFD|NORESIZE),
MSI-X (0 here), ERR (EINVAL for a non-PCIe function), REQ (count 1). Enabling MSI maps the
doorbell into the container's domain and programs the function's real MSI capability; user
space sees a virtual copy of config space (vfio_pci_config.c emulates most of it).
"""
import errno
import struct

from vfiolab import uapi

from . import pci as pcicfg
from . import uapi_layouts as L
from .errors import kernel_error
from .eventfds import EventfdCtx
from .userbuf import user_pointer
from .vfio_device import PAGE_SIZE, Region, VfioDevice, region_info, validate_irq_set
from .vfio_platform import PlatformIrq
from .topology import Interrupt

NUM_REGIONS, NUM_IRQS = uapi.VFIO_PCI_NUM_REGIONS, uapi.VFIO_PCI_NUM_IRQS
INTX, MSI, MSIX, ERR, REQ = (uapi.VFIO_PCI_INTX_IRQ_INDEX, uapi.VFIO_PCI_MSI_IRQ_INDEX,
                             uapi.VFIO_PCI_MSIX_IRQ_INDEX, uapi.VFIO_PCI_ERR_IRQ_INDEX,
                             uapi.VFIO_PCI_REQ_IRQ_INDEX)


class PciVfioDevice(VfioDevice):
    has_device_feature = True

    def __init__(self, board, device):
        super().__init__(board, device)
        self.irq_type = None                 # None, INTX or MSI (what is enabled)
        self.intx = None                     # PlatformIrq-like automasked INTx context
        self.msi_triggers = {}               # vector -> EventfdCtx
        self.msi_data = {}
        self.req_trigger = None
        self.vconfig = None

    # --- open / close -----------------------------------------------------------------------
    def open_device(self):
        """vfio_pci_core_enable: enable the function (memory decode on), snapshot config."""
        pci = self.board.pci
        cfg = pci.config(self.device)
        struct.pack_into("<H", cfg, pcicfg.PCI_COMMAND, pci.command(self.device) | pcicfg.PCI_COMMAND_MEMORY)
        self.vconfig = bytearray(cfg)

    def close_device(self):
        """vfio_pci_core_disable: IRQs off, bus mastering off, function reset where possible."""
        self._disable_irqs()
        cfg = self.board.pci.config(self.device)
        struct.pack_into("<H", cfg, pcicfg.PCI_COMMAND, 0)
        if self.req_trigger:
            self.req_trigger.put()
            self.req_trigger = None

    def request(self):
        if self.req_trigger is not None:
            self.req_trigger.signal(1)

    # --- regions ----------------------------------------------------------------------------
    def regions(self):
        model = self.device.model
        out = []
        for index, (_address, size) in enumerate(self.device.pci.bars):
            if size:
                flags = uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE
                if size >= PAGE_SIZE:
                    flags |= uapi.VFIO_REGION_INFO_FLAG_MMAP
                out.append(Region(index, size, flags,
                                  read=lambda off, n, i=index: model.mmio_read(i, off, n),
                                  write=lambda off, n, v, i=index: model.mmio_write(i, off, n, v),
                                  mmap_ok=True))
            else:
                out.append(Region(index, 0, 0))
        out.append(Region(uapi.VFIO_PCI_ROM_REGION_INDEX, 0, 0))
        out.append(Region(uapi.VFIO_PCI_CONFIG_REGION_INDEX, pcicfg.CONFIG_SIZE,
                          uapi.VFIO_REGION_INFO_FLAG_READ | uapi.VFIO_REGION_INFO_FLAG_WRITE,
                          read=self._config_read, write=self._config_write))
        out.append(Region(uapi.VFIO_PCI_VGA_REGION_INDEX, 0, 0))
        return out

    def rw(self, offset, data_or_count, write):
        index, off = offset >> uapi.VFIO_REGION_OFFSET_SHIFT, offset & ((1 << 40) - 1)
        if index == uapi.VFIO_PCI_CONFIG_REGION_INDEX:
            count = len(data_or_count) if write else data_or_count
            if off + count > pcicfg.CONFIG_SIZE:
                # vfio_config_do_rw: any part outside config space is EFAULT.
                raise kernel_error(errno.EFAULT, f"config space is {pcicfg.CONFIG_SIZE} bytes")
        return super().rw(offset, data_or_count, write)

    def _config_read(self, off, size):
        cfg = self.board.pci.config(self.device)
        view = bytearray(self.vconfig)
        view[pcicfg.PCI_COMMAND:pcicfg.PCI_COMMAND + 4] = cfg[pcicfg.PCI_COMMAND:pcicfg.PCI_COMMAND + 4]
        return int.from_bytes(view[off:off + size], "little")

    def _config_write(self, off, size, value):
        data = value.to_bytes(size, "little")
        cfg = self.board.pci.config(self.device)
        for i, byte in enumerate(data):
            at = off + i
            if at in (pcicfg.PCI_COMMAND, pcicfg.PCI_COMMAND + 1):
                # Memory, bus master and INTx-disable reach the hardware (vfio_basic_config_write).
                bits = (pcicfg.PCI_COMMAND_MEMORY | pcicfg.PCI_COMMAND_MASTER |
                        pcicfg.PCI_COMMAND_INTX_DISABLE) >> (8 * (at - pcicfg.PCI_COMMAND))
                cfg[at] = (cfg[at] & ~bits & 0xFF) | (byte & bits & 0xFF)
                self.vconfig[at] = cfg[at]
            elif 0x10 <= at < 0x28:
                bar, byte_in_bar = (at - 0x10) // 4, (at - 0x10) % 4
                size_mask = ~(self.device.pci.bars[bar][1] - 1) if self.device.pci.bars[bar][1] else 0
                self.vconfig[at] = byte & (size_mask >> (8 * byte_in_bar)) & 0xFF
            elif pcicfg.MSI_CAP + 2 <= at < pcicfg.MSI_CAP + 0x10:
                self.vconfig[at] = byte     # virtual: the kernel owns the real MSI registers

    # --- ioctls -----------------------------------------------------------------------------
    def ioctl(self, request, arg):
        if request == uapi.VFIO_DEVICE_GET_INFO:
            buf = user_pointer(arg, "VFIO_DEVICE_GET_INFO")
            argsz = struct.unpack_from("<I", buf.read(0, L.DEVICE_INFO_MINSZ))[0]
            if argsz < L.DEVICE_INFO_MINSZ:
                raise kernel_error(errno.EINVAL, "vfio_pci_ioctl_get_info: argsz too small")
            # No reset method: no FLR or PM capability, and a root-bus function has no bus reset.
            buf.write(4, struct.pack("<III", uapi.VFIO_DEVICE_FLAGS_PCI, NUM_REGIONS, NUM_IRQS))
            return 0
        if request == uapi.VFIO_DEVICE_GET_REGION_INFO:
            buf = user_pointer(arg, "VFIO_DEVICE_GET_REGION_INFO")
            index = struct.unpack_from("<III", buf.read(0, L.REGION_INFO_MINSZ))[2]
            if index == uapi.VFIO_PCI_VGA_REGION_INDEX:
                argsz = buf.u32(0)
                if argsz >= L.REGION_INFO_MINSZ:
                    raise kernel_error(errno.EINVAL, "vfio_pci_ioctl_get_region_info: no VGA on this function")
            return region_info(self, buf)
        if request == uapi.VFIO_DEVICE_GET_IRQ_INFO:
            return self.irq_info(user_pointer(arg, "VFIO_DEVICE_GET_IRQ_INFO"))
        if request == uapi.VFIO_DEVICE_SET_IRQS:
            return self.set_irqs(user_pointer(arg, "VFIO_DEVICE_SET_IRQS"))
        if request == uapi.VFIO_DEVICE_RESET:
            raise kernel_error(errno.EINVAL, "vfio_pci_ioctl_reset: the function has no reset method")
        raise kernel_error(errno.ENOTTY, f"vfio_pci_core_ioctl: unknown request {request:#x}")

    def irq_count(self, index):
        """vfio_pci_get_irq_count."""
        if index == INTX:
            return 1 if self.device.interrupts else 0
        if index == MSI:
            return 1
        if index == REQ:
            return 1
        return 0

    def irq_info(self, buf):
        argsz, _flags, index = struct.unpack_from("<III", buf.read(0, L.IRQ_INFO_MINSZ))
        if argsz < L.IRQ_INFO_MINSZ or index >= NUM_IRQS:
            raise kernel_error(errno.EINVAL, "vfio_pci_ioctl_get_irq_info: argsz or index")
        if index == ERR:
            raise kernel_error(errno.EINVAL, "vfio_pci_ioctl_get_irq_info: ERR needs a PCIe function")
        flags = uapi.VFIO_IRQ_INFO_EVENTFD
        if index == INTX:
            flags |= uapi.VFIO_IRQ_INFO_MASKABLE | uapi.VFIO_IRQ_INFO_AUTOMASKED
        else:
            flags |= uapi.VFIO_IRQ_INFO_NORESIZE
        buf.write(4, struct.pack("<III", flags, index, self.irq_count(index)))
        return 0

    def set_irqs(self, buf):
        """vfio_pci_set_irqs_ioctl."""
        index = struct.unpack_from("<III", buf.read(0, 12))[2]
        flags, index, start, count, data = validate_irq_set(buf, self.irq_count(index), NUM_IRQS)
        action = flags & uapi.VFIO_IRQ_SET_ACTION_TYPE_MASK
        func = None
        if index == INTX:
            func = {uapi.VFIO_IRQ_SET_ACTION_MASK: self._intx_mask,
                    uapi.VFIO_IRQ_SET_ACTION_UNMASK: self._intx_unmask,
                    uapi.VFIO_IRQ_SET_ACTION_TRIGGER: self._intx_trigger}.get(action)
        elif index in (MSI, MSIX) and action == uapi.VFIO_IRQ_SET_ACTION_TRIGGER:
            func = self._msi_trigger
        elif index == REQ and action == uapi.VFIO_IRQ_SET_ACTION_TRIGGER:
            func = self._req_trigger
        if func is None:
            raise kernel_error(errno.ENOTTY, "vfio_pci_set_irqs_ioctl: no such action for this index")
        return func(index, start, count, flags, data)

    # INTx
    def _intx_trigger(self, index, start, count, flags, data):
        if self.irq_type == INTX and not count and flags & uapi.VFIO_IRQ_SET_DATA_NONE:
            self._disable_irqs()
            return 0
        if self.irq_type not in (None, INTX) or start != 0 or count != 1:
            raise kernel_error(errno.EINVAL, "vfio_pci_set_intx_trigger")
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            if self.intx is None:
                self.intx = PlatformIrq(self, 0, Interrupt(self.device.interrupts[0].hwirq, True))
            self.irq_type = INTX
            return self.intx.set_trigger(struct.unpack("<i", data)[0])
        if self.irq_type != INTX:
            raise kernel_error(errno.EINVAL, "vfio_pci_set_intx_trigger: INTx is not enabled")
        if flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0":
            self.intx.handler()
        return 0

    def _intx_mask(self, index, start, count, flags, data):
        if self.irq_type != INTX or start != 0 or count != 1:
            raise kernel_error(errno.EINVAL, "vfio_pci_set_intx_mask")
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            raise kernel_error(errno.ENOTTY, "vfio_pci_set_intx_mask: eventfd masking is not implemented")
        if flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0":
            self.intx.mask()
        return 0

    def _intx_unmask(self, index, start, count, flags, data):
        if self.irq_type != INTX or start != 0 or count != 1:
            raise kernel_error(errno.EINVAL, "vfio_pci_set_intx_unmask")
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            fd = struct.unpack("<i", data)[0]
            if self.intx.unmask_virqfd is not None:
                self.intx.unmask_virqfd.put()
                self.intx.unmask_virqfd = None
            if fd >= 0:
                self.intx.unmask_virqfd = EventfdCtx(fd)
            return 0
        if flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0":
            self.intx.unmask()
        return 0

    # MSI
    def _msi_trigger(self, index, start, count, flags, data):
        """vfio_pci_set_msi_trigger."""
        if self.irq_type == index and not count and flags & uapi.VFIO_IRQ_SET_DATA_NONE:
            self._disable_irqs()
            return 0
        if self.irq_type not in (None, index):
            raise kernel_error(errno.EINVAL, "vfio_pci_set_msi_trigger: another IRQ type is enabled")
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD:
            fds = struct.unpack(f"<{count}i", data)
            if self.irq_type != index:
                self._msi_enable(start + count)
            for i, fd in enumerate(fds):
                vector = start + i
                old = self.msi_triggers.pop(vector, None)
                if old is not None:
                    old.put()
                if fd >= 0:
                    try:
                        self.msi_triggers[vector] = EventfdCtx(fd)
                    except OSError:
                        if not self.msi_triggers:
                            self._disable_irqs()
                        raise
            return 0
        if self.irq_type != index:
            raise kernel_error(errno.EINVAL, "vfio_pci_set_msi_trigger: MSI is not enabled")
        for i in range(count):
            ctx = self.msi_triggers.get(start + i)
            if ctx is not None and (flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[i:i + 1] != b"\0"):
                ctx.signal(1)
        return 0

    def _msi_enable(self, nvec):
        """vfio_msi_enable: allocate vectors, map the doorbell, program the function's MSI."""
        interrupts = self.board.interrupts
        container = self.group.container if self.group else None
        iommu = container.iommu if container else None
        messages = interrupts.enable_msi(self.device, nvec,
                                         [lambda v=vector: self._msi_fire(v) for vector in range(nvec)])
        self.irq_type = MSI
        if iommu is not None:
            iommu.map_doorbell(interrupts.doorbell)
        for vector, (address, data) in enumerate(messages):
            self.msi_data[vector] = data
        self.board.pci.program_msi(self.device, *messages[0])

    def _msi_fire(self, vector):
        """vfio_msihandler."""
        ctx = self.msi_triggers.get(vector)
        if ctx is not None:
            ctx.signal(1)

    def _req_trigger(self, index, start, count, flags, data):
        if flags & uapi.VFIO_IRQ_SET_DATA_EVENTFD and count == 1:
            if self.req_trigger is not None:
                self.req_trigger.put()
                self.req_trigger = None
            fd = struct.unpack("<i", data)[0]
            if fd >= 0:
                self.req_trigger = EventfdCtx(fd)
            return 0
        if not count and flags & uapi.VFIO_IRQ_SET_DATA_NONE:
            if self.req_trigger is not None:
                self.req_trigger.put()
                self.req_trigger = None
            return 0
        if self.req_trigger is not None and (flags & uapi.VFIO_IRQ_SET_DATA_NONE or data[:1] != b"\0"):
            self.req_trigger.signal(1)
        return 0

    def _disable_irqs(self):
        if self.irq_type == INTX and self.intx is not None:
            self.intx.cleanup()
            self.intx = None
        if self.irq_type == MSI:
            self.board.interrupts.disable_msi(self.device)
            for ctx in self.msi_triggers.values():
                ctx.put()
            self.msi_triggers, self.msi_data = {}, {}
            self.board.pci.disable_msi(self.device)
        self.irq_type = None

    def service(self):
        if self.intx is not None:
            self.intx.service_virqfds()
