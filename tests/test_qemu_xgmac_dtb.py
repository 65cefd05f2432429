"""vfiolab.board.qemu.xgmac_dtb: the qemu board's own device tree (dumped with its exact command
line) plus a calxeda,hb-xgmac node over the unused first virtio-mmio windows."""
import os
import shutil
import subprocess

import pytest

from vfiolab.board.qemu import image as guest_image
from vfiolab.board.qemu import xgmac_dtb
from vfiolab.board.qemu.board import _share_dir
from vfiolab.board.qemu.machine import Machine

for tool in ("qemu-system-aarch64", "dtc"):
    if not shutil.which(tool):
        pytest.skip(f"{tool} is missing (./bootstrap test installs it)", allow_module_level=True)


def test_the_board_dtb_gains_an_xgmac_node(tmp_path):
    machine = Machine(share_dir=_share_dir())
    image = guest_image.ensure_image()
    machine.rundir, machine.ram_fd = str(tmp_path), os.memfd_create("ram")
    os.ftruncate(machine.ram_fd, machine.memory)
    try:
        out = xgmac_dtb.dtb_with_xgmac(machine.command(image), machine.rundir, (machine.ram_fd,))
    finally:
        os.close(machine.ram_fd)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", out], capture_output=True,
                         text=True, check=True).stdout
    node = dts[dts.index("ethernet@a000000 {"):]
    assert 'compatible = "calxeda,hb-xgmac";' in node
    assert "reg = <0x00 0xa000000 0x00 0x1000>;" in node
    assert "iommus" not in node[:node.index("};")]                 # behind no IOMMU
    assert dts.count("virtio_mmio@") == 32 and "pcie@" in dts      # the board's own tree kept
