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
    """The qemu board needs QEMU (with the edu device), and apt on first use to build its image."""
    facts, fixes, usable = [], [], True
    facts.append("boots qemu-system-aarch64 -M virt (SMMUv3, GICv3 ITS or GICv2m, QEMU's edu PCI "
                 "DMA device) with Debian 12's arm64 kernel; an agent in the guest answers the labs")
    qemu = shutil.which("qemu-system-aarch64")
    if qemu:
        facts.append(f"{qemu}: {_version(qemu)}")
        try:
            devices = subprocess.run([qemu, "-device", "help"], capture_output=True, text=True,
                                     timeout=20).stdout
        except (OSError, subprocess.TimeoutExpired):
            devices = ""
        if '"edu"' not in devices:
            usable = False
            facts.append("this QEMU has no edu device (the qemu board's DMA device)")
            fixes.append("install Debian/Ubuntu's qemu-system-arm, which builds edu in")
    else:
        usable = False
        facts.append("qemu-system-aarch64 is not installed")
        fixes.append("sudo apt install qemu-system-arm   (provides qemu-system-aarch64 and -arm)")
    arm = shutil.which("qemu-system-arm")
    facts.append(f"qemu-system-arm (QEMU's PL330 model, for comparisons): {arm or 'missing'}")
    from .board.qemu.image import DEBIAN_KEYRING, Image
    image = Image(cache_dir("qemu", "image"))
    if image.ready():
        size = (os.path.getsize(image.kernel) + os.path.getsize(image.initramfs)) >> 20
        facts.append(f"guest image ready in {image.directory} ({size} MiB): boots without network")
    else:
        facts.append(f"guest image not built yet: the first board downloads ~70 MB of Debian arm64 "
                     f"packages (kernel, busybox, python3.11) with apt into {cache_dir('qemu')}")
        if not shutil.which("apt-get"):
            usable = False
            facts.append("apt-get is missing: the guest image is built from Debian's arm64 packages")
            fixes.append("use a Debian or Ubuntu machine (VFIOLAB_CACHE may point at a cache "
                         "built on one)")
        elif not os.path.exists(DEBIAN_KEYRING) and not os.path.exists("/etc/apt/trusted.gpg.d/debian-archive-bookworm-stable.asc"):
            facts.append("Debian's archive keys are not installed: apt cannot check the packages")
            fixes.append("sudo apt install debian-archive-keyring")
    # vfio_platform=True (lab 03): vfio-platform modules built for the guest kernel, an xgmac node.
    needs = [t for t in ("aarch64-linux-gnu-gcc", "make", "dtc") if not shutil.which(t)]
    facts.append("vfio-platform on this board (qemu board vfio_platform=True): "
                 + (f"needs {', '.join(needs)}" if needs else "build tools present")
                 + "; the first use downloads ~150 MB (kernel headers, kbuild, linux-source) and "
                 "builds the modules in about a minute; VFIO then runs in no-IOMMU mode, which "
                 "isolates nothing and taints the guest kernel")
    if needs:
        fixes.append("sudo apt install gcc-aarch64-linux-gnu make device-tree-compiler   "
                     "(for vfio-platform on the qemu board)")
    facts.append("console: `vfiolab console` opens a shell on a running board's guest")
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
