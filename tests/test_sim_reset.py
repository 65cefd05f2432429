"""vfio-platform's reset on the sim board: the portable scenarios of tests/reset_scenarios.py on
kernels 6.1, 6.6 and 6.18, with and without the Calxeda reset module installed, and what only the
sim can show (the wire): a running DMA that the reset stops, and one that nothing stops.
"""
import struct

import pytest

import vfiolab
from vfiolab import uapi as U
from vfiolab.hw import xgmac as X
from vfiolab.hw.xgmac import rx_descriptor

import reset_scenarios as R
from scenarios import Session, dma_map

KERNELS = [(6, 1), (6, 6), (6, 18)]
IOVA = 0x4000_0000


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: "%d.%d" % k)
@pytest.mark.parametrize("scenario", R.WITH_RESET_MODULE, ids=lambda f: f.__name__)
def test_with_the_reset_module(scenario, kernel):
    with vfiolab.open_board("sim", kernel=kernel) as board:
        scenario(board, R.xgmac(board))


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: "%d.%d" % k)
@pytest.mark.parametrize("scenario", R.WITHOUT_RESET_MODULE, ids=lambda f: f.__name__)
def test_without_the_reset_module(scenario, kernel):
    with vfiolab.open_board("sim", kernel=kernel, missing_modules=[R.RESET_MODULE]) as board:
        scenario(board, R.xgmac(board))


def test_the_6_1_refusal_is_the_version_switch():
    """The same board and steps: 6.1 refuses with reset_required=0, 6.3 binds."""
    results = {}
    for kernel in ((6, 1), (6, 3)):
        with vfiolab.open_board("sim", kernel=kernel, reset_required=False,
                                missing_modules=[R.RESET_MODULE]) as board:
            results[kernel] = R.try_bind(board, R.xgmac(board))
    assert results == {(6, 1): None, (6, 3): "vfio-platform"}


def test_deprecation_lines_on_6_18_once():
    with vfiolab.open_board("sim", kernel=(6, 18)) as board:
        target = R.xgmac(board)
        R.try_bind(board, target)
        for _ in range(2):
            with Session(board, target) as s:
                board.ioctl(s.device, U.VFIO_DEVICE_RESET)
        log = board.dmesg()
        assert log.count("DEPRECATION: VFIO Calxeda xgmac platform reset is deprecated and will be "
                         "removed in a future kernel release") == 1
        board.sysfs_write("/sys/bus/amba/devices/2c0a0000.dma/driver_override", "vfio-amba")
        board.sysfs_write("/sys/bus/amba/devices/2c0a0000.dma/driver/unbind", "2c0a0000.dma")
        board.sysfs_write("/sys/bus/amba/drivers_probe", "2c0a0000.dma")
        assert board.dmesg().count("vfio-amba 2c0a0000.dma: DEPRECATION: vfio-amba is deprecated "
                                   "and will be removed in a future kernel release") == 1
    with vfiolab.open_board("sim", kernel=(6, 6)) as board:
        R.try_bind(board, R.xgmac(board))
        with Session(board, R.xgmac(board)):
            pass
        assert "DEPRECATION" not in board.dmesg()


def running_rx_dma(board, target):
    """A user-space driver that leaves the receive DMA running when it exits: RX ring armed,
    SR and RE set, the buffer mapped at IOVA; returns the buffer."""
    s = Session(board, target)
    buf = board.alloc(0x4000)
    dma_map(board, s.container, buf.vaddr, IOVA, 0x4000)
    buf[0:32] = rx_descriptor(IOVA + 0x1000, 1536, end_ring=True)
    regs = board.mmap(s.device, 0x1000, 0)
    regs.write32(X.DMA_RX_BASE_ADDR, IOVA)
    regs.write32(X.CONTROL, X.CONTROL_RE)
    regs.write32(X.DMA_CONTROL, X.DMA_CONTROL_SR)
    regs.close()
    s.close()                       # close: vfio-platform resets the device (when it can)
    return buf


def frame():
    return b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x07" + b"\x08\x06" + bytes(50)


def test_reset_on_close_stops_a_running_dma():
    with vfiolab.open_board("sim") as board:
        target = R.xgmac(board)
        R.try_bind(board, target)
        buf = running_rx_dma(board, target)
        board.clear_iommu_faults()
        board.xgmac_wire(target.name).inject(frame())    # the receiver is off: dropped
        board.model(target.name).step()
        assert board.iommu_faults() == []
        assert struct.unpack_from("<I", buf, 0)[0] & X.DESC_OWN   # ring untouched


def test_without_a_reset_the_dma_keeps_running_after_close():
    """6.6 with reset_required=0 and no reset module: nothing stops the DMA when the owner goes.
    Its next frame is written to an IOVA the next owner may map (here nobody has: an SMMU fault)."""
    with vfiolab.open_board("sim", kernel=(6, 6), reset_required=False,
                            missing_modules=[R.RESET_MODULE]) as board:
        target = R.xgmac(board)
        assert R.try_bind(board, target) == "vfio-platform"
        running_rx_dma(board, target)
        board.clear_iommu_faults()
        board.xgmac_wire(target.name).inject(frame())
        board.model(target.name).step()
        fault = board.iommu_faults()[0]
        assert (fault.device, fault.iova, fault.access) == (target.name, IOVA, "read")


def test_request_module_loads_an_installed_reset_module():
    """vfio_platform_get_reset: nothing registered for the compatible, so request_module
    ("vfio-reset:calxeda,hb-xgmac") loads the installed module and the second lookup finds it."""
    with vfiolab.open_board("sim") as board:
        assert R.RESET_MODULE not in board.modules()
        assert R.try_bind(board, R.xgmac(board)) == "vfio-platform"
        assert board.modules()[R.RESET_MODULE]["refcount"] == 1
