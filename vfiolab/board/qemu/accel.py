"""Which accelerator runs the qemu board's CPU: KVM on an aarch64 host whose /dev/kvm this user can
open, TCG (QEMU's emulated CPU) everywhere else. VFIOLAB_QEMU_ACCEL=kvm|tcg overrides the choice.

Under KVM the guest has no EL2, so no KVM of its own (lab 03's guest-in-the-guest): QEMU 7.2 (Debian
12's) refuses virtualization=on with KVM. A board that asks for virtualization=True therefore gets TCG.
"""
import dataclasses
import fcntl
import os

ENV_VAR = "VFIOLAB_QEMU_ACCEL"
DEV_KVM = "/dev/kvm"
KVM_GET_API_VERSION = 0xAE00     # _IO(KVMIO, 0x00)
KVM_API_VERSION = 12             # the only version Linux has ever answered


@dataclasses.dataclass(frozen=True)
class Accel:
    name: str      # "kvm" or "tcg": QEMU's -accel
    reason: str    # why, in words for `vfiolab doctor` and errors


def kvm_api_version(path):
    """KVM_GET_API_VERSION of the KVM device at path (OSError when it cannot be opened or asked)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        return fcntl.ioctl(fd, KVM_GET_API_VERSION)
    finally:
        os.close(fd)


def kvm_unusable(machine=None, dev_kvm=DEV_KVM, probe=kvm_api_version):
    """None when KVM can run the aarch64 guest here, else why not (and what to do)."""
    machine = machine or os.uname().machine
    if machine != "aarch64":
        return (f"this machine is {machine}: KVM runs guests of the host's own architecture only, "
                "so the aarch64 guest is emulated")
    if not os.path.exists(dev_kvm):
        return (f"{dev_kvm} is absent: enable KVM in the host kernel (CONFIG_KVM, booted at EL2), "
                f"or pass it into the container (--device {DEV_KVM})")
    try:
        version = probe(dev_kvm)
    except PermissionError:
        return (f"{dev_kvm} cannot be opened by this user: add it to the group that owns {dev_kvm} "
                f"(usually kvm); in a container: --device {DEV_KVM} --group-add GID (that group's "
                "id on the host)")
    except OSError as e:
        return f"{dev_kvm} does not answer KVM_GET_API_VERSION ({e.strerror or e}): it is not KVM"
    if version != KVM_API_VERSION:
        return f"{dev_kvm} answers KVM API version {version}, not {KVM_API_VERSION}"
    return None


def choose(virtualization=None, env=None, board_asks=None, **probe):
    """The Accel for a board; virtualization=True (a guest with EL2) needs TCG. board_asks="tcg":
    the board's caller needs QEMU's own emulated devices (lab 04 studies QEMU's GICv2m and ITS
    models; under KVM the GIC and ITS are the host kernel's vGIC instead). probe: kvm_unusable's
    arguments (machine, dev_kvm, probe), for tests."""
    env = os.environ if env is None else env
    if board_asks not in (None, "tcg"):
        raise ValueError(f"accel is 'tcg' (QEMU's emulated CPU and GIC) or None (KVM where it can "
                         f"run, else TCG), not {board_asks!r}")
    if board_asks == "tcg":
        return Accel("tcg", "the board was opened with accel='tcg': QEMU's own GIC and ITS models")
    wanted = (env.get(ENV_VAR) or "auto").strip().lower()
    if wanted not in ("auto", "kvm", "tcg"):
        raise ValueError(f"{ENV_VAR} is kvm, tcg or unset (choose by itself), not {wanted!r}")
    if wanted == "tcg":
        return Accel("tcg", f"{ENV_VAR}=tcg")
    why_not = kvm_unusable(**probe)
    if wanted == "kvm" and (why_not or virtualization):
        raise RuntimeError(f"{ENV_VAR}=kvm, but KVM cannot run this board: "
                           + (why_not or "virtualization=True needs EL2 in the guest, which QEMU "
                              "gives under TCG only"))
    if why_not:
        return Accel("tcg", why_not)
    if virtualization:
        return Accel("tcg", "virtualization=True (a guest with its own KVM) needs EL2, which QEMU "
                            "gives under TCG only")
    return Accel("kvm", "aarch64 host with a usable /dev/kvm (the guest has no KVM of its own)")
