"""vfio-platform for the qemu board's guest kernel, built from Debian's own packages (REFERENCE.md
section 12): Debian 12's arm64 kernel has CONFIG_VFIO_PLATFORM unset, so the modules are built out
of tree for that exact kernel, with apt only, and cached beside the guest image.

    build = ensure_modules()      # first use: ~150 MB of packages, about a minute; then cached
    build.modules                 # {"vfio_platform": path, "vfio_platform_base": ..., ...}

What it builds from linux-source-<series> (drivers/vfio), against linux-headers-<abi>-arm64 and its
-common package, with the *host's* linux-kbuild (fixdep and modpost run here; the arm64 ones fail
with Exec format error) and gcc-aarch64-linux-gnu:
  - drivers/vfio/platform: vfio-platform, vfio-platform-base, vfio-amba and the reset modules
    (vfio-platform-calxedaxgmac, vfio-platform-amdxgbe);
  - vfio.ko again with CONFIG_VFIO_NOIOMMU (vfio_main.c, iova_bitmap.c, container.c): the virt
    machine's platform devices sit behind no IOMMU, so only no-IOMMU mode lets VFIO take one. That
    mode isolates nothing (a device can DMA anywhere) and loading it taints the kernel.
Every package is pinned to the guest kernel's own version (the archive keeps only the newest ABI,
so the image and these move together); vermagic is checked against the kernel's.
QemuBoard(vfio_platform=True) shares them into the guest and loads them (agent.py's op_modprobe).
"""
import os
import shutil
import subprocess
import tarfile

from ...paths import cache_dir
from .. import BoardUnavailable
from . import image as guest_image
from . import kmod

BUILD_VERSION = "1"          # bump when what is built changes
PLATFORM_CONFIG = ["CONFIG_VFIO_PLATFORM=m", "CONFIG_VFIO_AMBA=m",
                   "CONFIG_VFIO_PLATFORM_CALXEDAXGMAC_RESET=m", "CONFIG_VFIO_PLATFORM_AMDXGBE_RESET=m"]
NOIOMMU_FILES = ["vfio_main.c", "iova_bitmap.c", "container.c", "vfio.h"]
CROSS = "aarch64-linux-gnu-"
say = guest_image.say


class HostApt(guest_image.Apt):
    """The same private apt state, for packages of this machine's architecture (linux-kbuild)."""

    def __init__(self, root, arch):
        super().__init__(root)
        with open(os.path.join(root, "sources.list"), "w") as f:
            signed = (f" signed-by={guest_image.DEBIAN_KEYRING}"
                      if os.path.exists(guest_image.DEBIAN_KEYRING) else "")
            f.writelines(f"deb [arch={arch}{signed}] {line}\n" for line in guest_image.SOURCES)
        self.options = [o.replace("=arm64", f"={arch}") for o in self.options]


class ModuleBuild:
    def __init__(self, directory, kver):
        self.directory, self.kver = directory, kver
        self.stamp = os.path.join(directory, "stamp")

    @property
    def modules(self):
        return kmod.find_modules(self.directory)

    def ready(self):
        try:
            return open(self.stamp).read() == f"{self.kver} {BUILD_VERSION}"
        except OSError:
            return False


def _host_arch():
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()


# The tools a vfio_platform=True board needs on this machine, with the Debian packages that have
# them: dtc at every boot (xgmac_dtb.py), the build's until the modules are built and cached.
DTC = {"dtc": "device-tree-compiler"}
BUILD_TOOLS = {CROSS + "gcc": "gcc-aarch64-linux-gnu", "make": "make", "dpkg-deb": "dpkg"}


def _require(tools):
    missing = {tool: package for tool, package in tools.items() if not shutil.which(tool)}
    if missing:
        raise BoardUnavailable(
            f"vfio-platform on the qemu board (vfio_platform=True) needs {', '.join(missing)}, "
            f"not installed here: sudo apt install {' '.join(missing.values())}", "qemu")


def modules_ready():
    """Whether the modules for the current guest image's kernel are built (no image: no)."""
    image = guest_image.Image(cache_dir("qemu", "image"))
    if not image.ready():
        return False
    with open(os.path.join(image.directory, "kernel-version")) as f:
        kver = f.read().strip()
    return ModuleBuild(cache_dir("qemu", f"vfio-platform-{kver}"), kver).ready()


def require_tools():
    """BoardUnavailable, naming each missing tool and its package, when this machine cannot boot a
    vfio_platform=True board: checked before anything is downloaded or started."""
    _require(DTC if modules_ready() else {**DTC, **BUILD_TOOLS})


def package_version(apt, package):
    out = apt.run("apt-cache", "show", package, show=False)
    for line in out.splitlines():
        if line.startswith("Version: "):
            return line.split(": ", 1)[1]
    raise RuntimeError(f"apt-cache knows no version of {package}")


def _make(headers, src, extra=()):
    cmd = ["make", "-s", "-C", headers, f"M={src}", "ARCH=arm64", f"CROSS_COMPILE={CROSS}",
           *extra, "modules"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        raise RuntimeError(f"building {src} failed:\n{(run.stdout + run.stderr)[-3000:]}")


def build(kver, out_dir, work):
    """Download, unpack and build into out_dir; work is scratch space (removed afterwards)."""
    _require(BUILD_TOOLS)
    base = cache_dir("qemu")
    apt = guest_image.Apt(os.path.join(base, "apt"))
    say("fetching Debian's package lists (arm64 and this machine's)")
    apt.run("apt-get", "update")
    host = HostApt(os.path.join(base, "apt-host"), _host_arch())
    host.run("apt-get", "update")
    version = package_version(apt, f"linux-image-{kver}")
    abi = kver.rsplit("-", 1)[0]                      # 6.1.0-57
    series = ".".join(kver.split(".")[:2])            # 6.1
    arm64 = [f"linux-headers-{kver}={version}", f"linux-headers-{abi}-common={version}",
             f"linux-source-{series}={version}"]
    say(f"downloading {', '.join(arm64)} and linux-kbuild-{series}={version} (~150 MB)")
    debs = apt.download(arm64) + host.download([f"linux-kbuild-{series}={version}"])
    root = os.path.join(work, "root")
    for deb in debs:
        say(f"unpacking {os.path.basename(deb)}")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    headers = os.path.join(root, "usr", "src", f"linux-headers-{kver}")
    makefile = os.path.join(headers, "Makefile")
    with open(makefile) as f:       # it includes the -common Makefile by its absolute path
        text = f.read()
    with open(makefile, "w") as f:
        f.write(text.replace(f"/usr/src/linux-headers-{abi}-common",
                             os.path.join(root, "usr", "src", f"linux-headers-{abi}-common")))
    say(f"unpacking drivers/vfio from linux-source-{series} (xz: the slow step)")
    tarball = os.path.join(root, "usr", "src", f"linux-source-{series}.tar.xz")
    src = os.path.join(work, "src")
    with tarfile.open(tarball) as tar:
        prefix = f"linux-source-{series}/drivers/vfio/"
        members = [m for m in tar if m.name.startswith(prefix)
                   and (m.name.startswith(prefix + "platform") or
                        os.path.basename(m.name) in NOIOMMU_FILES)]
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(src, members=members, filter="tar")
        else:
            tar.extractall(src, members=members)
    vfio_src = os.path.join(src, f"linux-source-{series}", "drivers", "vfio")
    say("building vfio-platform, vfio-amba and the reset modules")
    _make(headers, os.path.join(vfio_src, "platform"), PLATFORM_CONFIG)
    say("building vfio.ko with CONFIG_VFIO_NOIOMMU")
    noiommu = os.path.join(work, "noiommu")
    os.makedirs(noiommu)
    for name in NOIOMMU_FILES:
        shutil.copy(os.path.join(vfio_src, name), noiommu)
    with open(os.path.join(noiommu, "Makefile"), "w") as f:
        f.write("vfio-y += vfio_main.o iova_bitmap.o container.o\nobj-m += vfio.o\n"
                "ccflags-y += -DCONFIG_VFIO_NOIOMMU=1\n")
    _make(headers, noiommu)
    os.makedirs(out_dir, exist_ok=True)
    built = kmod.find_modules(os.path.join(vfio_src, "platform"))
    built.update(kmod.find_modules(noiommu))
    for name, path in built.items():
        magic = kmod.modinfo(path).get("vermagic", "")
        if not magic.startswith(kver + " "):
            raise RuntimeError(f"{name}: vermagic {magic!r} is not the guest kernel's {kver}")
        shutil.copy(path, os.path.join(out_dir, os.path.basename(path)))
    for deb in debs:
        os.unlink(deb)
    return sorted(built)


def ensure_modules(refresh=False):
    """The modules for the current guest image's kernel, built on first use (progress on stderr)."""
    image = guest_image.ensure_image()
    with open(os.path.join(image.directory, "kernel-version")) as f:
        kver = f.read().strip()
    result = ModuleBuild(cache_dir("qemu", f"vfio-platform-{kver}"), kver)
    if result.ready() and not refresh:
        return result
    work = cache_dir("qemu", "vfio-platform-build")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(result.directory, ignore_errors=True)
    os.makedirs(work)
    try:
        names = build(kver, result.directory, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(result.stamp, "w") as f:
        f.write(f"{kver} {BUILD_VERSION}")
    say(f"vfio-platform modules for {kver} ready: {', '.join(names)}")
    return result
