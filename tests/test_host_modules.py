"""The host board's kernel modules: board.modprobe/rmmod run the real tools (a stand-in on PATH
here, printing what kmod prints), board.modules() reads /proc/modules and /sys/module."""
import errno
import os
import stat

import pytest

from vfiolab.board.host import HostBoard

from scenarios import expect_errno

KMOD = """#!/bin/sh
echo "$0 $*" >> "{log}"
case "$*" in
  *no_such*) echo "modprobe: FATAL: Module $1 not found in directory /lib/modules/6.1.0-57-arm64" >&2; exit 1;;
  *busy*) echo "rmmod: ERROR: Module $1 is in use" >&2; exit 1;;
  *bad=*) echo "modprobe: ERROR: could not insert '$1': Invalid argument" >&2; exit 1;;
esac
exit 0
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    log = tmp_path / "calls"
    for tool in ("modprobe", "rmmod"):
        path = tmp_path / tool
        path.write_text(KMOD.format(log=log))
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    board = HostBoard()
    board.calls = log
    yield board
    board.shutdown()


def test_modprobe_and_rmmod_run_the_tools_with_parameters(host):
    assert host.modprobe("vfio-platform", reset_required=False, x=7) == "vfio_platform"
    host.rmmod("vfio_platform")
    calls = [line.split(" ", 1)[1] for line in host.calls.read_text().splitlines()]
    assert calls == ["vfio-platform reset_required=0 x=7", "vfio_platform"]


def test_failures_carry_the_errno_and_the_tools_message(host):
    e = expect_errno(errno.ENOENT, host.modprobe, "vfio_no_such")
    assert "not found in directory" in str(e)
    expect_errno(errno.EBUSY, host.rmmod, "vfio_busy")
    expect_errno(errno.EINVAL, host.modprobe, "vfio_platform", bad="y")
    with pytest.raises(TypeError):
        host.modprobe("--all")


def test_modules_reads_proc_and_sys(host, tmp_path):
    proc = tmp_path / "modules"
    proc.write_text("vfio_platform 20480 0 - Live 0x0\n"
                    "vfio_platform_base 24576 2 vfio_platform,vfio_amba, Live 0x0\n")
    params = tmp_path / "sys" / "vfio_platform" / "parameters"
    params.mkdir(parents=True)
    (params / "reset_required").write_text("Y\n")
    host.proc_modules, host.sys_module = str(proc), str(tmp_path / "sys")
    assert host.modules() == {
        "vfio_platform": {"params": {"reset_required": "Y"}, "refcount": 0, "used_by": []},
        "vfio_platform_base": {"params": {}, "refcount": 2, "used_by": ["vfio_platform", "vfio_amba"]}}
    host.proc_modules = str(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="no loadable module support"):
        host.modules()
