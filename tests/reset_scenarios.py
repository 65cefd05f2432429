"""Portable scenarios for vfio-platform's reset (the Calxeda xgmac and its reset module).

Plain functions over the board contract plus board.modprobe / board.rmmod / board.modules, in the
style of tests/scenarios.py, so the same function runs on the sim and on a real kernel. What they
check is drivers/vfio/platform in Linux (read in linux-source-6.1 6.1.192-3):

  - vfio_platform_get_reset: the handler registered for the device's first compatible, else
    request_module("vfio-reset:<compatible>") and a second lookup, which takes a reference on the
    reset module (so it cannot be removed while the device is bound);
  - vfio_platform_init_common: no handler and reset_required -> "No reset function found for
    device <name>", the probe fails with -ENOENT, the device stays unbound, and the write to
    drivers_probe still succeeds; without reset_required 6.1 still returns -ENOENT (fixed in 6.3);
  - the handler runs on open, on close and on VFIO_DEVICE_RESET ("reset" in the log);
    DEVICE_FLAGS_RESET only with one; VFIO_DEVICE_RESET without one is EINVAL;
  - vfio_platform_calxedaxgmac_reset: 0 to DMA_INTR_ENA, DMA_CONTROL &= ~(ST|SR),
    CONTROL &= ~(TE|RE); no soft reset, so descriptor bases and the MAC address stay.

Each scenario takes (board, target) with target = xgmac(board), and leaves vfio_platform loaded
with its parameters as it found them. "With the module" scenarios load it (board.modprobe);
"without" ones unload it, and need a board where nothing loads it behind their back: the sim's
request_module loads an installed module, so the sim runs them with missing_modules; the qemu
guest has no /sbin/modprobe, so its kernel's request_module loads nothing.
On the qemu board the node is behind no IOMMU (no-IOMMU mode: /dev/vfio/noiommu-N) and has no
xgmac model behind it, so registers_after_reset checks the registers only where VERSION is
the xgmac's.
"""
import ctypes
import errno
import os
import posixpath
import re

from vfiolab import uapi as U

from scenarios import Session, Target, bind, expect_errno, find_by_compatible

RESET_MODULE = "vfio_platform_calxedaxgmac"
PLATFORM = "vfio_platform"
# xgmac registers (drivers/net/ethernet/calxeda/xgmac.c)
CONTROL, VERSION, ADDR_HIGH0, ADDR_LOW0 = 0x000, 0x020, 0x040, 0x044
DMA_RX_BASE, DMA_TX_BASE, DMA_CONTROL, DMA_INTR_ENA = 0xF0C, 0xF10, 0xF18, 0xF1C
TE, RE, LM = 0x8, 0x4, 0x1000
ST, SR, OSF = 0x2000, 0x2, 0x4


def xgmac(board):
    name = find_by_compatible(board, "platform", "calxeda,hb-xgmac")
    assert name, "no calxeda,hb-xgmac device on the platform bus"
    return Target("platform", name, "vfio-platform")


class XgmacSession(Session):
    """scenarios.Session, or on a group VFIO made in no-IOMMU mode (/dev/vfio/noiommu-N: the qemu
    board's xgmac node is behind no IOMMU) the same with VFIO_NOIOMMU_IOMMU."""

    def __init__(self, board, target):
        group_id = bind(board, target)
        if f"noiommu-{group_id}" not in board.listdir("/dev/vfio"):
            super().__init__(board, target)
            return
        self.board, self.target, self.group_id, self.fds = board, target, group_id, []
        self.container = self._keep(board.open("/dev/vfio/vfio", os.O_RDWR))
        self.group = self._keep(board.open(f"/dev/vfio/noiommu-{group_id}", os.O_RDWR))
        board.ioctl(self.group, U.VFIO_GROUP_SET_CONTAINER, ctypes.c_int32(self.container))
        board.ioctl(self.container, U.VFIO_SET_IOMMU, U.VFIO_NOIOMMU_IOMMU)
        self.device = self._keep(board.ioctl(self.group, U.VFIO_GROUP_GET_DEVICE_FD,
                                             target.name.encode()))


def kernel_version(board):
    release = board.sysfs_read("/proc/sys/kernel/osrelease")
    major, minor = re.match(r"(\d+)\.(\d+)", release).groups()
    return int(major), int(minor)


def driver_of(board, target):
    if "driver" not in board.listdir(target.sysfs):
        return None
    return posixpath.basename(board.readlink(f"{target.sysfs}/driver"))


def try_bind(board, target):
    """driver_override + unbind + drivers_probe; returns the driver the device ends with. A probe
    failure is not an error of the write (bus_rescan_devices_helper drops it)."""
    board.sysfs_write(f"{target.sysfs}/driver_override", target.driver)
    current = driver_of(board, target)
    if current is not None and current != target.driver:
        board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
    if current != target.driver:
        board.sysfs_write(f"/sys/bus/{target.bus}/drivers_probe", target.name)
    return driver_of(board, target)


def reload_vfio_platform(board, **params):
    """rmmod + modprobe vfio_platform (reset_required is 0444: set only at load). Unbinds our
    devices first, as rmmod would."""
    if PLATFORM in board.modules():
        board.rmmod(PLATFORM)
    board.modprobe(PLATFORM, **params)


def reset_required_param(board):
    return board.sysfs_read(f"/sys/module/{PLATFORM}/parameters/reset_required").strip()


def _log_lines(board, needle):
    return [line for line in board.dmesg().splitlines() if needle in line]


def device_flags(board, device_fd):
    info = U.vfio_device_info()
    board.ioctl(device_fd, U.VFIO_DEVICE_GET_INFO, info)
    return info.flags


def is_xgmac_model(regs):
    """The registers behind the node are an xgmac (VERSION 0x1012), not another device's window
    (QEMU virt has no xgmac model: a DT node there sits over a virtio-mmio window)."""
    return regs.read32(VERSION) == 0x1012


# --- with the reset module installed --------------------------------------------------------------
def unbind_and_unload_reset_module(board, target):
    if RESET_MODULE in board.modules():
        if driver_of(board, target) == "vfio-platform":
            board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
        board.rmmod(RESET_MODULE)


def reset_module_found_by_compatible(board, target):
    """With the reset module loaded, the probe finds its handler by the first compatible and holds
    the module: rmmod is refused while the device is bound; unbinding lets it go."""
    unbind_and_unload_reset_module(board, target)
    board.modprobe(RESET_MODULE)
    assert try_bind(board, target) == "vfio-platform"
    assert board.modules()[RESET_MODULE]["refcount"] == 1
    expect_errno(errno.EBUSY, board.rmmod, RESET_MODULE)   # the bound device holds it
    with XgmacSession(board, target) as s:
        assert device_flags(board, s.device) == U.VFIO_DEVICE_FLAGS_PLATFORM | U.VFIO_DEVICE_FLAGS_RESET
    board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
    assert board.modules()[RESET_MODULE]["refcount"] == 0
    board.rmmod(RESET_MODULE)
    assert RESET_MODULE not in board.modules()


def reset_runs_on_open_close_and_ioctl(board, target):
    """Each open, each close and each VFIO_DEVICE_RESET runs the handler once."""
    board.modprobe(RESET_MODULE)
    assert try_bind(board, target) == "vfio-platform"
    before = len(_log_lines(board, f"{target.name}: VFIO: reset"))
    with XgmacSession(board, target) as s:
        assert len(_log_lines(board, f"{target.name}: VFIO: reset")) == before + 1      # open
        board.ioctl(s.device, U.VFIO_DEVICE_RESET)
        board.ioctl(s.device, U.VFIO_DEVICE_RESET)
        assert len(_log_lines(board, f"{target.name}: VFIO: reset")) == before + 3
    assert len(_log_lines(board, f"{target.name}: VFIO: reset")) == before + 4          # close


def registers_after_reset(board, target):
    """What the Calxeda reset writes: DMA_INTR_ENA 0, ST and SR off, TE and RE off; everything
    else (OSF, loopback, the descriptor bases, the MAC address) exactly as it was."""
    board.modprobe(RESET_MODULE)
    assert try_bind(board, target) == "vfio-platform"
    with XgmacSession(board, target) as s:
        regs = board.mmap(s.device, 0x1000, 0)
        try:
            if not is_xgmac_model(regs):
                return                                     # no xgmac behind the node here
            mac = (regs.read32(ADDR_HIGH0), regs.read32(ADDR_LOW0))
            regs.write32(DMA_TX_BASE, 0x4000_1000)
            regs.write32(DMA_RX_BASE, 0x4000_2000)
            regs.write32(CONTROL, TE | RE | LM)
            regs.write32(DMA_INTR_ENA, 0x1FFFF)
            regs.write32(DMA_CONTROL, ST | SR | OSF)
            board.ioctl(s.device, U.VFIO_DEVICE_RESET)
            assert (regs.read32(CONTROL), regs.read32(DMA_CONTROL), regs.read32(DMA_INTR_ENA)) == \
                (LM, OSF, 0)
            assert (regs.read32(DMA_TX_BASE), regs.read32(DMA_RX_BASE)) == (0x4000_1000, 0x4000_2000)
            assert (regs.read32(ADDR_HIGH0), regs.read32(ADDR_LOW0)) == mac
        finally:
            regs.close()


# --- without the reset module ------------------------------------------------------------------
def refused_without_reset_module(board, target):
    """reset_required=1 (the default) and no handler: the probe fails with -ENOENT and says why,
    the device ends unbound, and drivers_probe's write succeeds all the same."""
    unbind_and_unload_reset_module(board, target)
    reload_vfio_platform(board)
    assert reset_required_param(board) == "Y"
    refusal = f"{target.name}: VFIO: No reset function found for device {target.name}"
    refusals = len(_log_lines(board, refusal))
    assert try_bind(board, target) is None
    assert len(_log_lines(board, refusal)) == refusals + 1
    assert RESET_MODULE not in board.modules()


def reset_required_off_without_reset_module(board, target):
    """reset_required=0: 6.1 still fails the probe (vfio_platform_init_common returns the lookup's
    -ENOENT); 6.3 and later bind the device with no RESET flag, VFIO_DEVICE_RESET is EINVAL, and
    open and close go on without a reset ("no reset function found!")."""
    unbind_and_unload_reset_module(board, target)
    reload_vfio_platform(board, reset_required=0)
    try:
        assert reset_required_param(board) == "N"
        expect_errno(errno.EACCES, board.sysfs_write,
                     f"/sys/module/{PLATFORM}/parameters/reset_required", "1")      # 0444
        refusal = f"{target.name}: VFIO: No reset function found for device {target.name}"
        refusals = len(_log_lines(board, refusal))
        driver = try_bind(board, target)
        if kernel_version(board) < (6, 3):
            assert driver is None
            assert len(_log_lines(board, refusal)) == refusals      # refused without a word
            return
        assert driver == "vfio-platform"
        with XgmacSession(board, target) as s:
            assert device_flags(board, s.device) == U.VFIO_DEVICE_FLAGS_PLATFORM
            expect_errno(errno.EINVAL, board.ioctl, s.device, U.VFIO_DEVICE_RESET)
        assert _log_lines(board, f"{target.name}: VFIO: no reset function found!")
        board.sysfs_write(f"{target.sysfs}/driver/unbind", target.name)
    finally:
        reload_vfio_platform(board)


def module_parameters_in_sysfs(board, target):
    """Parameters of loaded modules under /sys/module/<name>/parameters: reset_required is 0444,
    type1's allow_unsafe_interrupts is 0644 (a write takes effect); an unknown module is ENOENT."""
    assert board.sysfs_read("/sys/module/vfio_iommu_type1/parameters/dma_entry_limit") == "65535\n"
    path = "/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts"
    old = board.sysfs_read(path).strip()
    try:
        board.sysfs_write(path, "1")
        assert board.sysfs_read(path) == "Y\n"
        expect_errno(errno.EINVAL, board.sysfs_write, path, "maybe")
    finally:
        board.sysfs_write(path, old)
    expect_errno(errno.ENOENT, board.modprobe, "vfio_no_such_module")
    expect_errno(errno.ENOENT, board.rmmod, "vfio_no_such_module")


WITH_RESET_MODULE = [reset_module_found_by_compatible, reset_runs_on_open_close_and_ioctl,
                     registers_after_reset, module_parameters_in_sysfs]
WITHOUT_RESET_MODULE = [refused_without_reset_module, reset_required_off_without_reset_module]
