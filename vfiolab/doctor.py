"""Which boards can run here, and exactly what to do about the ones that cannot.

Each check returns a Report: the board, whether it is usable, the facts found, and the fixes.
`vfiolab doctor` prints them; `vfiolab.doctor.check(kind)` lets a lab say why a board is missing.
"""
import dataclasses
import os
import platform
import shutil
import subprocess

from .paths import cache_dir


@dataclasses.dataclass
class Report:
    board: str
    usable: bool
    facts: list
    fixes: list

    def __str__(self):
        head = f"{self.board:5} {'usable' if self.usable else 'NOT usable'}"
        lines = [head] + [f"      - {fact}" for fact in self.facts]
        lines += [f"      > {fix}" for fix in self.fixes]
        return "\n".join(lines)


def _version(cmd):
    try:
        out = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=20).stdout
        return out.splitlines()[0] if out else "unknown version"
    except (OSError, subprocess.TimeoutExpired):
        return "does not run"


def check_sim():
    facts, fixes, usable = [], [], True
    try:
        from . import _hw  # noqa: F401  (the cffi extension with the C DMA kernels)
        facts.append("C DMA kernels (vfiolab._hw) are built and import")
    except ImportError as e:
        usable = False
        facts.append(f"C DMA kernels do not import: {e}")
        fixes.append("reinstall so they compile: .venv/bin/pip install -e . "
                     "(needs: sudo apt install build-essential python3-dev)")
    dot = shutil.which("dot")
    if dot:
        facts.append(f"graphviz: {dot} (bus graphs render)")
    else:
        facts.append("graphviz `dot` is missing: the labs run, but bus graphs cannot be drawn")
        fixes.append("sudo apt install graphviz")
    return Report("sim", usable, facts, fixes)


def check_qemu():
    facts, fixes, usable = [], [], True
    qemu = shutil.which("qemu-system-aarch64")
    if qemu:
        facts.append(f"{qemu}: {_version(qemu)}")
    else:
        usable = False
        facts.append("qemu-system-aarch64 is not installed")
        fixes.append("sudo apt install qemu-system-arm   (provides qemu-system-aarch64 and -arm)")
    arm = shutil.which("qemu-system-arm")
    facts.append(f"qemu-system-arm (QEMU's PL330 model, for comparisons): {arm or 'missing'}")
    if shutil.which("apt-get"):
        facts.append("apt-get is present: Debian's arm64 kernel, modules, busybox and Python "
                     "are downloaded on first boot")
    else:
        usable = False
        facts.append("apt-get is missing: the guest image is built from Debian's arm64 packages")
        fixes.append("use a Debian or Ubuntu machine (or put a prepared image in "
                     f"{cache_dir('qemu')})")
    image = cache_dir("qemu")
    facts.append(f"image cache {image}: {'present' if os.path.isdir(image) else 'empty (first boot downloads ~60 MB)'}")
    return Report("qemu", usable, facts, fixes)


def check_host():
    facts, fixes, usable = [], [], True
    facts.append(f"this machine: {platform.machine()}, Linux {platform.release()}")
    groups = "/sys/kernel/iommu_groups"
    ngroups = len(os.listdir(groups)) if os.path.isdir(groups) else 0
    facts.append(f"IOMMU groups: {ngroups}")
    if ngroups == 0:
        usable = False
        fixes.append("no IOMMU groups: enable the IOMMU (SMMU on ARM; intel_iommu=on or amd_iommu=on "
                     "on x86) in firmware and on the kernel command line")
    loaded = [m for m in ("vfio", "vfio_iommu_type1", "vfio_pci", "vfio_platform", "vfio_amba")
              if os.path.isdir(f"/sys/module/{m}")]
    facts.append(f"VFIO modules present: {', '.join(loaded) or 'none'}")
    if not os.path.exists("/dev/vfio/vfio"):
        usable = False
        fixes.append("/dev/vfio/vfio is absent: sudo modprobe vfio-pci (PCI) or vfio-platform "
                     "(platform devices; needs a kernel with CONFIG_VFIO_PLATFORM)")
    elif not os.access("/dev/vfio/vfio", os.R_OK | os.W_OK):
        usable = False
        fixes.append("/dev/vfio/vfio is not accessible: run as root or add a udev rule for /dev/vfio")
    else:
        facts.append("/dev/vfio/vfio is present and accessible")
    return Report("host", usable, facts, fixes)


CHECKS = {"sim": check_sim, "qemu": check_qemu, "host": check_host}


def check(kind):
    return CHECKS[kind]()
