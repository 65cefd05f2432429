"""VFIO platform reset handlers, found by compatible (vfio_platform_lookup_reset) once their module
(alias vfio-reset:<compatible>, see modules.py) is loaded. A handler resets the device through its
registers, as the kernel module does through ioremap of region 0.
"""

# drivers/vfio/platform/reset/vfio_platform_calxedaxgmac.c
XGMAC_CONTROL, XGMAC_DMA_CONTROL, XGMAC_DMA_INTR_ENA = 0x000, 0xF18, 0xF1C
DMA_CONTROL_ST, DMA_CONTROL_SR = 0x2000, 0x2
MAC_ENABLE_TX, MAC_ENABLE_RX = 0x8, 0x4


def calxeda_xgmac_reset(regs, vdev):
    """vfio_platform_calxedaxgmac_reset: mask IRQs, stop the DMA, disable the MAC. No soft reset,
    descriptor bases and MAC address untouched; a DMA already stopped stays as it is."""
    board = vdev.board
    if board.since("platform_deprecated") and board.kernel_modules.once("calxedaxgmac_deprecation"):
        board.log(f"vfio-platform {vdev.device.name}: DEPRECATION: VFIO Calxeda xgmac platform "
                  "reset is deprecated and will be removed in a future kernel release")
    regs.write32(XGMAC_DMA_INTR_ENA, 0)
    regs.write32(XGMAC_DMA_CONTROL, regs.read32(XGMAC_DMA_CONTROL) & ~(DMA_CONTROL_ST | DMA_CONTROL_SR))
    regs.write32(XGMAC_CONTROL, regs.read32(XGMAC_CONTROL) & ~(MAC_ENABLE_TX | MAC_ENABLE_RX))
    return 0


RESET_HANDLERS = {
    "calxeda,hb-xgmac": ("vfio_platform_calxedaxgmac", calxeda_xgmac_reset),
}


def lookup(board, compatible):
    """vfio_platform_lookup_reset: (module name, handler) registered by a loaded reset module for
    this compatible string, or None."""
    found = RESET_HANDLERS.get(compatible)
    if found is None or not board.kernel_modules.is_loaded(found[0]):
        return None
    return found


class ModelRegisters:
    """Region 0 of a device model as the reset module's ioremap sees it."""

    def __init__(self, model, region=0):
        self.model, self.region = model, region

    def read32(self, offset):
        return self.model.mmio_read(self.region, offset, 4) & 0xFFFFFFFF

    def write32(self, offset, value):
        self.model.mmio_write(self.region, offset, 4, value & 0xFFFFFFFF)
