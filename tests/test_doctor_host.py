"""`vfiolab doctor` on a machine that could run the host board (real ARM hardware, in a container):
/dev/vfio/vfio and /dev/vfio/GROUP, the group's viability, CAP_IPC_LOCK or memlock, and which
accelerator the qemu board gets. No real VFIO or KVM here: /dev, /proc and /sys are faked folders,
and KVM's answer a probe function."""
import os

import pytest

from vfiolab import doctor
from vfiolab.board.qemu import accel
from vfiolab.board.qemu.machine import Machine

CAP_IPC_LOCK = 1 << 14


def fake_root(tmp_path, *, groups=None, vfio_nodes=("vfio",), cap=0, memlock="65536",
              container=True):
    """A root with /sys (iommu groups: {group: {device: driver or None}}, on the platform bus),
    /dev/vfio/<nodes>, /proc/self/status (CapEff) and /proc/self/limits (memlock soft limit)."""
    root = tmp_path / "root"
    sysfs = root / "sys"
    for group, devices in (groups or {}).items():
        members = sysfs / "kernel" / "iommu_groups" / group / "devices"
        members.mkdir(parents=True)
        for name, driver in devices.items():
            device = sysfs / "devices" / "platform" / name
            device.mkdir(parents=True)
            bus = sysfs / "bus" / "platform"
            (bus / "devices").mkdir(parents=True, exist_ok=True)
            (bus / "devices" / name).symlink_to(device)
            device.joinpath("subsystem").symlink_to(bus)
            device.joinpath("iommu_group").symlink_to(sysfs / "kernel" / "iommu_groups" / group)
            if driver:
                (bus / "drivers" / driver).mkdir(parents=True, exist_ok=True)
                device.joinpath("driver").symlink_to(bus / "drivers" / driver)
            (members / name).symlink_to(device)
    (sysfs / "module" / "vfio").mkdir(parents=True)
    (root / "dev" / "vfio").mkdir(parents=True)
    for node in vfio_nodes:
        (root / "dev" / "vfio" / node).write_text("")
    (root / "proc" / "self").mkdir(parents=True)
    (root / "proc" / "self" / "status").write_text(f"Name:\tpython3\nCapEff:\t{cap:016x}\n")
    (root / "proc" / "self" / "limits").write_text(
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        f"Max locked memory         {memlock:<20} {memlock:<20} bytes     \n")
    if container:
        (root / "run").mkdir()
        (root / "run" / ".containerenv").write_text("")
    return str(root)


def test_a_passed_viable_group_with_ipc_lock_is_usable(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"}},
                     vfio_nodes=("vfio", "7"), cap=CAP_IPC_LOCK)
    r = doctor.check_host(root=root)
    assert r.usable, str(r)
    text = str(r)
    assert "/dev/vfio/7 is present" in text
    assert "IOMMU group 7 is viable: 7ff00000.dma (vfio-platform)" in text
    assert "CAP_IPC_LOCK" in text and r.fixes == []


def test_without_dev_vfio_the_fix_names_the_device_flags(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"}}, vfio_nodes=(),
                     memlock="unlimited")
    r = doctor.check_host(root=root)
    assert not r.usable
    fixes = "\n".join(r.fixes)
    assert "--device /dev/vfio/vfio" in fixes
    assert "--device /dev/vfio/GROUP" in fixes       # no group passed: says how to find which
    assert "--cap-add IPC_LOCK --ulimit memlock=-1:-1" in fixes   # the container's whole command


def test_the_named_device_group_must_be_passed(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"},
                                       "9": {"9000000.pl011": "uart-pl011"}},
                     vfio_nodes=("vfio", "9"), memlock="unlimited")
    r = doctor.check_host(device="7ff00000.dma", root=root)
    assert not r.usable
    assert "7ff00000.dma (platform) is in IOMMU group 7" in str(r)
    assert any("--device /dev/vfio/7" in f for f in r.fixes), r.fixes


def test_a_group_node_this_user_cannot_open(tmp_path, monkeypatch):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"}},
                     vfio_nodes=("vfio", "7"), memlock="unlimited")
    node = os.path.join(root, "dev", "vfio", "7")
    os.chmod(node, 0)
    if os.geteuid() == 0:   # root may open any file: answer as the kernel would for uid 1000
        access = os.access
        monkeypatch.setattr(doctor.os, "access", lambda p, m: p != node and access(p, m))
    r = doctor.check_host(root=root)
    assert not r.usable and "cannot read and write it" in str(r)
    assert any("udev rule" in f and "--user root" in f for f in r.fixes)


def test_a_group_with_a_device_on_a_host_driver_is_not_viable(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform", "7ff10000.i2c": "i2c-foo",
                                             "7ff20000.timer": None}},
                     vfio_nodes=("vfio", "7"), cap=CAP_IPC_LOCK)
    r = doctor.check_host(root=root)
    assert not r.usable
    text = str(r)
    assert ("IOMMU group 7 is not viable: 7ff00000.dma (vfio-platform), 7ff10000.i2c (i2c-foo), "
            "7ff20000.timer (no driver)") in text
    # Only the device on a host driver needs moving; the one with no driver blocks nothing.
    [fix] = [f for f in r.fixes if "unbind" in f]
    assert "7ff10000.i2c from i2c-foo to vfio-platform" in fix
    assert "/sys/bus/platform/devices/7ff10000.i2c/driver/unbind" in fix
    assert "7ff20000.timer" not in fix


def test_a_small_memlock_without_ipc_lock_is_refused(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"}},
                     vfio_nodes=("vfio", "7"), memlock=str(8 << 20))
    r = doctor.check_host(root=root)
    assert not r.usable
    assert "memlock limit 8192 KiB and no CAP_IPC_LOCK" in str(r)
    assert any("--ulimit memlock=-1:-1 or --cap-add IPC_LOCK" in f for f in r.fixes)
    big = fake_root(tmp_path / "big", groups={"7": {"7ff00000.dma": "vfio-platform"}},
                    vfio_nodes=("vfio", "7"), memlock=str(1 << 30))
    assert doctor.check_host(root=big).usable


def test_an_unknown_device_and_one_without_iommu_group(tmp_path):
    root = fake_root(tmp_path, groups={"7": {"7ff00000.dma": "vfio-platform"}}, cap=CAP_IPC_LOCK)
    assert "no device nosuch in /sys/bus/*/devices" in str(doctor.check_host("nosuch", root))
    lone = os.path.join(root, "sys", "bus", "platform", "devices", "1c000000.flash")
    os.makedirs(lone)
    r = doctor.check_host("1c000000.flash", root)
    assert not r.usable and "has no IOMMU group" in str(r)


def test_outside_a_container_no_container_flags(tmp_path):
    root = fake_root(tmp_path, vfio_nodes=(), container=False)
    assert not any("podman/docker run" in f for f in doctor.check_host(root=root).fixes)


# --- the qemu board's accelerator ------------------------------------------------------------

def kvm_device(tmp_path):
    path = tmp_path / "kvm"
    path.write_text("")
    return str(path)


def test_kvm_on_an_aarch64_host_with_a_usable_dev_kvm(tmp_path):
    chosen = accel.choose(env={}, machine="aarch64", dev_kvm=kvm_device(tmp_path), probe=lambda p: 12)
    assert chosen.name == "kvm"
    machine = Machine(accel=chosen)
    assert machine.virtualization is False       # QEMU refuses virtualization=on with KVM
    line = command(machine, tmp_path)
    assert "-accel kvm -cpu host" in line and "virtualization=on" not in line


def command(machine, tmp_path):
    """The QEMU command line the machine would start (nothing is started)."""
    class Image:
        kernel, initramfs = "/k", "/i"
    machine.rundir, machine.ram_fd = str(tmp_path), 99
    return " ".join(machine.command(Image))


@pytest.mark.parametrize("machine, probe, why", [
    ("x86_64", lambda p: 12, "this machine is x86_64"),
    ("aarch64", lambda p: 12, None),                       # dev_kvm missing: see below
    ("aarch64", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied")),
     "cannot be opened by this user"),
    ("aarch64", lambda p: (_ for _ in ()).throw(OSError(25, "Inappropriate ioctl for device")),
     "does not answer KVM_GET_API_VERSION"),
    ("aarch64", lambda p: 11, "API version 11"),
])
def test_tcg_and_why_when_kvm_cannot_be_used(tmp_path, machine, probe, why):
    dev = kvm_device(tmp_path) if why else str(tmp_path / "absent")
    chosen = accel.choose(env={}, machine=machine, dev_kvm=dev, probe=probe)
    assert chosen.name == "tcg"
    assert (why or "is absent") in chosen.reason
    if why is None:
        assert "--device /dev/kvm" in chosen.reason
    tcg = Machine(accel=chosen)
    line = command(tcg, tmp_path)
    assert tcg.virtualization and "virtualization=on" in line and "-accel tcg -cpu cortex-a57" in line


def test_a_guest_with_its_own_kvm_asks_for_tcg_and_the_variable_overrides(tmp_path):
    usable = dict(machine="aarch64", dev_kvm=kvm_device(tmp_path), probe=lambda p: 12)
    assert accel.choose(True, env={}, **usable).name == "tcg"
    assert accel.choose(env={accel.ENV_VAR: "tcg"}, **usable).name == "tcg"
    with pytest.raises(RuntimeError, match="virtualization=True needs EL2"):
        accel.choose(True, env={accel.ENV_VAR: "kvm"}, **usable)
    with pytest.raises(RuntimeError, match="this machine is x86_64"):
        accel.choose(env={accel.ENV_VAR: "kvm"}, machine="x86_64")
    with pytest.raises(ValueError, match="kvm, tcg or unset"):
        accel.choose(env={accel.ENV_VAR: "hvf"})


def test_doctor_says_which_accelerator_the_qemu_board_gets(monkeypatch):
    monkeypatch.delenv(accel.ENV_VAR, raising=False)
    text = str(doctor.check_qemu())
    if os.uname().machine != "aarch64":
        assert f"CPU: emulated by TCG (this machine is {os.uname().machine}" in text
    else:
        assert "CPU: KVM acceleration" in text or "CPU: emulated by TCG (/dev/kvm" in text
    monkeypatch.setenv(accel.ENV_VAR, "tcg")
    assert f"CPU: emulated by TCG ({accel.ENV_VAR}=tcg)" in str(doctor.check_qemu())


def test_doctor_qemu_names_every_tool_the_vfio_platform_board_requires(monkeypatch, tmp_path):
    """doctor and the board (vfio_platform_build.require_tools) read one list: with none of the
    tools on PATH, doctor names each tool and the package that brings it (dpkg-deb was missing)."""
    from vfiolab.board.qemu import vfio_platform_build as build
    monkeypatch.setenv("PATH", str(tmp_path))
    text = str(doctor.check_qemu())
    tools = {**build.DTC, **build.BUILD_TOOLS}
    line = next(f for f in text.splitlines() if "vfio-platform on this board" in f)
    for tool, package in tools.items():
        assert tool in line, (tool, line)
        assert package in text, (package, text)


def test_a_board_that_asks_for_tcg_gets_qemus_own_gic_even_where_kvm_could_run(tmp_path):
    """Lab 04 studies QEMU's GICv2m and ITS models: under KVM they would be the host kernel's vGIC,
    so its board asks for TCG (QemuBoard(accel="tcg")), which wins over the variable too."""
    usable = dict(machine="aarch64", dev_kvm=kvm_device(tmp_path), probe=lambda p: 12)
    assert accel.choose(env={}, **usable).name == "kvm"
    chosen = accel.choose(env={accel.ENV_VAR: "kvm"}, board_asks="tcg", **usable)
    assert chosen.name == "tcg" and "accel='tcg'" in chosen.reason
    assert "-accel tcg -cpu cortex-a57" in command(Machine(accel=chosen), tmp_path)
    with pytest.raises(ValueError, match="'tcg' .* or None"):
        accel.choose(env={}, board_asks="kvm", **usable)
