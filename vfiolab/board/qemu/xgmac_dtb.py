"""A calxeda,hb-xgmac node in the qemu board's device tree, so vfio-platform and the real Calxeda
reset module run on the guest's real kernel (REFERENCE.md section 12).

QEMU's virt machine writes its device tree itself; this dumps it with the board's exact command
line (-machine dumpdtb), adds the node with dtc, and the board boots with -dtb. There is no xgmac
model on virt: the node sits over the first virtio-mmio windows (0x0a000000, which no transport of
this board uses: QEMU fills them from the top), so its registers read as those empty windows, and
the reset's writes (0 to 0xF1C, CONTROL &= ~(TE|RE)) land there harmlessly. It is behind no IOMMU:
VFIO takes it only in no-IOMMU mode (vfio_platform_build.py's vfio.ko). QemuBoard(vfio_platform=
True) boots with it (Machine.dtb_editor).
"""
import os
import shutil
import subprocess

from .. import BoardUnavailable

XGMAC_NODE = """
	ethernet@a000000 {
		compatible = "calxeda,hb-xgmac";
		reg = <0x0 0x0a000000 0x0 0x1000>;
		interrupts = <0x0 0x10 0x1>, <0x0 0x11 0x1>;
	};
"""
XGMAC_NAME = "a000000.ethernet"


def dtb_with_xgmac(command, rundir, pass_fds=()):
    """Dump the DTB QEMU would give the guest for `command`, add the xgmac node, return the path
    of the new DTB (in rundir)."""
    dtc = shutil.which("dtc")
    if not dtc:
        raise BoardUnavailable("dtc is not installed: sudo apt install device-tree-compiler "
                               "(the qemu board's xgmac node is added with it)", "qemu")
    dumped = os.path.join(rundir, "virt.dtb")
    run = subprocess.run([*command, "-machine", f"dumpdtb={dumped}"], capture_output=True,
                         text=True, pass_fds=pass_fds, timeout=60)
    if not os.path.exists(dumped):
        raise RuntimeError(f"QEMU did not dump its device tree: {run.stderr[-1000:]}")
    source = subprocess.run([dtc, "-q", "-I", "dtb", "-O", "dts", dumped], capture_output=True,
                            text=True, check=True).stdout
    end = source.rstrip().rfind("};")
    edited = source[:end] + XGMAC_NODE + source[end:]
    out = os.path.join(rundir, "virt-xgmac.dtb")
    subprocess.run([dtc, "-q", "-I", "dts", "-O", "dtb", "-o", out], input=edited, text=True,
                   check=True, capture_output=True)
    return out
