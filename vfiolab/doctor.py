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
    from .board.qemu import accel
    try:
        chosen = accel.choose()
        facts.append(f"CPU: {'KVM acceleration' if chosen.name == 'kvm' else 'emulated by TCG'} "
                     f"({chosen.reason})")
    except (ValueError, RuntimeError) as e:
        usable = False
        facts.append(f"CPU: {e}")
        fixes.append(f"unset {accel.ENV_VAR}, or make what it asks for possible")
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
    from .board.qemu.vfio_platform_build import BUILD_TOOLS, DTC
    tools = {**DTC, **BUILD_TOOLS}          # the board's own list (require_tools): never disagree
    needs = [t for t in tools if not shutil.which(t)]
    facts.append("vfio-platform on this board (qemu board vfio_platform=True): "
                 + (f"needs {', '.join(needs)}" if needs else "build tools present")
                 + "; the first use downloads ~150 MB (kernel headers, kbuild, linux-source) and "
                 "builds the modules in about a minute; VFIO then runs in no-IOMMU mode, which "
                 "isolates nothing and taints the guest kernel")
    if needs:
        packages = " ".join(dict.fromkeys(tools[t] for t in needs))
        fixes.append(f"sudo apt install {packages}   (for vfio-platform on the qemu board)")
    facts.append("console: `vfiolab console` opens a shell on a running board's guest")
    return Report("qemu", usable, facts, fixes)


# The drivers that may hold a device of a group VFIO opens (the kernel's iommu_group_dma_owner_claimed:
# VFIO's own drivers and the driver_managed_dma ones); a device with no driver blocks nothing.
DMA_OWNER_DRIVERS = ("pci-stub", "pcieport")
# What the host board's DMA mappings pin: the labs' largest check maps about 2 MiB; room for your own.
MEMLOCK_NEEDED = 64 << 20
CAP_IPC_LOCK = 14
CONTAINER_FLAGS = ("podman/docker run --device /dev/vfio/vfio --device /dev/vfio/GROUP "
                   "--cap-add IPC_LOCK --ulimit memlock=-1:-1")


def _link_name(link):
    return os.path.basename(os.readlink(link)) if os.path.islink(link) else None


def _driver(device_dir):
    return _link_name(os.path.join(device_dir, "driver"))


def _group_of(root, device):
    """(bus, IOMMU group) of a device named as in /sys/bus/*/devices, or (bus, None), or None."""
    buses = os.path.join(root, "sys", "bus")
    for bus in sorted(os.listdir(buses)) if os.path.isdir(buses) else []:
        path = os.path.join(buses, bus, "devices", device)
        if os.path.exists(path):
            link = os.path.join(path, "iommu_group")
            return bus, os.path.basename(os.readlink(link)) if os.path.islink(link) else None
    return None


def _memlock(root):
    """(CAP_IPC_LOCK in effect, soft RLIMIT_MEMLOCK in bytes or None for unlimited) of this process."""
    cap = False
    for line in open(os.path.join(root, "proc", "self", "status")):
        if line.startswith("CapEff:"):
            cap = bool(int(line.split()[1], 16) >> CAP_IPC_LOCK & 1)
    for line in open(os.path.join(root, "proc", "self", "limits")):
        if line.startswith("Max locked memory"):
            soft = line[len("Max locked memory"):].split()[0]
            return cap, None if soft == "unlimited" else int(soft)
    return cap, 0


def _check_group(root, group, facts, fixes):
    """Facts and fixes about one IOMMU group; True when the host board can open it."""
    node = os.path.join(root, "dev", "vfio", group)
    ok = True
    if not os.path.exists(node):
        ok = False
        facts.append(f"/dev/vfio/{group} is absent")
        fixes.append(f"bind the group's devices to a VFIO driver on the host (vfio-platform, "
                     f"vfio-pci), and in a container pass it: --device /dev/vfio/{group}")
    elif not os.access(node, os.R_OK | os.W_OK):
        ok = False
        facts.append(f"/dev/vfio/{group} is there but this user (uid {os.getuid()}) cannot read and "
                     "write it")
        fixes.append(f"let this user open /dev/vfio/{group}: a udev rule on the host "
                     "(SUBSYSTEM==\"vfio\", GROUP=\"...\", MODE=\"0660\"), or run as root "
                     "(--user root in a container)")
    else:
        facts.append(f"/dev/vfio/{group} is present and readable/writable")
    members = os.path.join(root, "sys", "kernel", "iommu_groups", group, "devices")
    names = sorted(os.listdir(members)) if os.path.isdir(members) else []
    drivers = {name: _driver(os.path.join(members, name)) for name in names}
    blockers = {n: d for n, d in drivers.items()
                if d and not d.startswith("vfio") and d not in DMA_OWNER_DRIVERS}
    bus = {n: _link_name(os.path.join(members, n, "subsystem")) or "*" for n in names}
    held = ", ".join(f"{n} ({d or 'no driver'})" for n, d in drivers.items())
    if not names:
        ok = False
        facts.append(f"IOMMU group {group} does not exist in /sys/kernel/iommu_groups")
    elif blockers:
        ok = False
        facts.append(f"IOMMU group {group} is not viable: {held}")
        for name, driver in blockers.items():
            where = f"/sys/bus/{bus[name]}"
            vfio = "vfio-pci" if bus[name] == "pci" else "vfio-platform"
            fixes.append(f"on the host, move {name} from {driver} to {vfio} (or leave it with no "
                         f"driver): echo {name} > {where}/devices/{name}/driver/unbind; echo {vfio} > "
                         f"{where}/devices/{name}/driver_override; echo {name} > {where}/drivers_probe")
    else:
        facts.append(f"IOMMU group {group} is viable: {held}")
    return ok


def check_host(device=None, root="/"):
    """Can the host board assign a device here? device: its name in /sys/bus/*/devices (default:
    every group /dev/vfio holds). root: where /dev, /proc and /sys are (tests fake them)."""
    facts, fixes, usable = [], [], True
    facts.append(f"this machine: {platform.machine()}, Linux {platform.release()}")
    groups = os.path.join(root, "sys", "kernel", "iommu_groups")
    ngroups = len(os.listdir(groups)) if os.path.isdir(groups) else 0
    facts.append(f"IOMMU groups: {ngroups}")
    if ngroups == 0:
        usable = False
        fixes.append("no IOMMU groups: enable the IOMMU (SMMU on ARM; intel_iommu=on or amd_iommu=on "
                     "on x86) in firmware and on the kernel command line")
    loaded = [m for m in ("vfio", "vfio_iommu_type1", "vfio_pci", "vfio_platform", "vfio_amba")
              if os.path.isdir(os.path.join(root, "sys", "module", m))]
    facts.append(f"VFIO modules present: {', '.join(loaded) or 'none'}")
    container = os.path.join(root, "dev", "vfio", "vfio")
    if not os.path.exists(container):
        usable = False
        facts.append("/dev/vfio/vfio is absent")
        fixes.append("/dev/vfio/vfio: on the host, sudo modprobe vfio-pci (PCI) or vfio-platform "
                     "(platform devices; needs a kernel with CONFIG_VFIO_PLATFORM); in a container, "
                     "pass it: --device /dev/vfio/vfio")
    elif not os.access(container, os.R_OK | os.W_OK):
        usable = False
        facts.append("/dev/vfio/vfio is there but this user cannot read and write it")
        fixes.append("/dev/vfio/vfio is not accessible: run as root (--user root in a container) or "
                     "add a udev rule for /dev/vfio")
    else:
        facts.append("/dev/vfio/vfio is present and accessible")

    if device:
        found = _group_of(root, device)
        if found is None:
            usable = False
            facts.append(f"no device {device} in /sys/bus/*/devices")
            fixes.append("name the device as /sys/bus/platform/devices or /sys/bus/pci/devices "
                         "does (e.g. 7ff00000.dma, 0000:01:00.0)")
            to_check = []
        elif found[1] is None:
            usable = False
            facts.append(f"{device} ({found[0]}) has no IOMMU group: no IOMMU translates its DMA")
            fixes.append(f"{device} cannot be assigned safely: put it behind the SMMU in the device "
                         "tree/firmware (iommus = <...>), or pick a device that has an iommu_group")
            to_check = []
        else:
            facts.append(f"{device} ({found[0]}) is in IOMMU group {found[1]}")
            to_check = [found[1]]
    else:
        vfio_dir = os.path.join(root, "dev", "vfio")
        to_check = sorted((g for g in (os.listdir(vfio_dir) if os.path.isdir(vfio_dir) else [])
                           if g.isdigit()), key=int)
        if not to_check:
            usable = False
            facts.append("no /dev/vfio/GROUP: no device is bound to a VFIO driver here (or none was "
                         "passed into this container)")
            fixes.append("bind the device to vfio-platform (vfio-pci for PCI) on the host and pass "
                         "its group: --device /dev/vfio/GROUP (`vfiolab doctor host --device NAME` "
                         "says which GROUP)")
    for group in to_check:
        usable = _check_group(root, group, facts, fixes) and usable

    try:
        cap, limit = _memlock(root)
    except OSError as e:
        cap, limit = False, 0
        facts.append(f"cannot read this process's capabilities and limits: {e}")
    if cap:
        facts.append("CAP_IPC_LOCK: the pages VFIO pins for DMA are not counted against memlock")
    elif limit is None or limit >= MEMLOCK_NEEDED:
        facts.append("memlock limit: " + ("unlimited" if limit is None else f"{limit >> 20} MiB")
                     + " (VFIO counts every page it pins for DMA against it)")
    else:
        usable = False
        facts.append(f"memlock limit {limit >> 10} KiB and no CAP_IPC_LOCK: VFIO_IOMMU_MAP_DMA fails "
                     f"(ENOMEM) past it; the labs need {MEMLOCK_NEEDED >> 20} MiB")
        fixes.append("raise the memlock limit: --ulimit memlock=-1:-1 or --cap-add IPC_LOCK in a "
                     "container; `ulimit -l unlimited` (or /etc/security/limits.conf) on a host")
    if not usable and any(os.path.exists(os.path.join(root, marker))
                          for marker in ("run/.containerenv", ".dockerenv")):
        fixes.append(f"this is a container; on real ARM hardware run it as: {CONTAINER_FLAGS}")
    return Report("host", usable, facts, fixes)


CHECKS = {"sim": check_sim, "qemu": check_qemu, "host": check_host}


def check(kind, **options):
    """The Report of one board; options go to its check (check_host's device)."""
    return CHECKS[kind](**options)
