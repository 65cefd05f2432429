"""A learner who turns on a lab's qemu section on a machine that lacks what the qemu board needs
(QEMU itself; for lab 03's vfio-platform dtc and the module build's cross compiler; Debian's
packages on the first boot, when the network is down) gets one line from the cell: what is missing,
how to install it, `vfiolab doctor qemu` and `./bootstrap test`; not a traceback, and nothing is
downloaded or booted first. Each case is made by a PATH without the tool (or with apt answering as
it does offline) and runs the lab's own cells with VFIOLAB_BOARD=qemu; a vfiolab command that
boots the board says the same on stderr."""
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from lab_runs import execute, grade_id, lab_copy, needs_qemu


def path_without(tmp_path, *tools):
    """A PATH holding every program this one does (symlinks in one folder) but `tools`."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            program = os.path.join(directory, name)
            if name in tools or os.path.lexists(folder / name) or not os.access(program, os.X_OK):
                continue
            (folder / name).symlink_to(program)
    return str(folder)


def run_qemu_cell(lab, cell_id, tmp_path):
    """The lab's setup cell then its qemu cell `cell_id`, on the qemu board; the error the second
    ended in."""
    folder, nb = lab_copy(lab, tmp_path)
    nb.cells = [c for c in nb.cells if grade_id(c) in ("setup", cell_id)]
    assert len(nb.cells) == 2
    execute(nb, folder, board="qemu", timeout=120)
    assert not [o for o in nb.cells[0].outputs if o.output_type == "error"], nb.cells[0].outputs
    errors = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert len(errors) == 1, nb.cells[1].outputs
    return errors[0]


def assert_one_line_saying(error, *what):
    assert error.ename == "BoardUnavailable", (error.ename, error.evalue)
    assert len(error.traceback) == 1, error.traceback      # one line, no frames of vfiolab
    line = error.traceback[0]
    for words in (*what, "`vfiolab doctor qemu`", "`./bootstrap test`"):
        assert words in line, (words, line)


@needs_qemu("03-xgmac-irqfd")
def test_lab03_vfio_platform_without_dtc(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", path_without(tmp_path, "dtc"))
    error = run_qemu_cell("03-xgmac-irqfd", "code-40", tmp_path)
    assert_one_line_saying(error, "needs dtc, not installed here",
                           "sudo apt install device-tree-compiler",
                           '(in `with vfiolab.open_board("qemu", vfio_platform=True) as qb:`)')


@needs_qemu("03-xgmac-irqfd")
def test_lab03_vfio_platform_without_the_cross_compiler_downloads_nothing(tmp_path, monkeypatch):
    """No modules built yet (an empty cache): the build's tools are needed, and their lack is said
    before the guest image (~70 MB) or the kernel sources (~150 MB) are fetched."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("VFIOLAB_CACHE", str(cache))
    monkeypatch.setenv("PATH", path_without(tmp_path, "aarch64-linux-gnu-gcc"))
    error = run_qemu_cell("03-xgmac-irqfd", "code-40", tmp_path)
    assert_one_line_saying(error, "needs aarch64-linux-gnu-gcc, not installed here",
                           "sudo apt install gcc-aarch64-linux-gnu")
    assert not cache.exists()


APT_OFFLINE = {   # apt 2.6 (Debian 12) with no network: update only warns, what follows finds nothing
    "apt-get": """\
        #!/bin/sh
        for last; do :; done
        if [ "$last" = update ]; then
            echo "Err:1 http://deb.debian.org/debian bookworm InRelease"
            echo "  Temporary failure resolving 'deb.debian.org'"
            echo "W: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'"
            echo "W: Some index files failed to download. They have been ignored, or old ones used instead."
            exit 0
        fi
        echo "E: Unable to locate package $last"
        exit 100
        """,
    "apt-cache": """\
        #!/bin/sh
        echo "E: No packages found"
        exit 100
        """,
}


@needs_qemu("04-msi-its")
def test_lab04_first_boot_when_debian_cannot_be_reached(tmp_path, monkeypatch):
    """No guest image yet and no network: the qemu board's first boot cannot fetch its packages."""
    monkeypatch.setenv("VFIOLAB_CACHE", str(tmp_path / "cache"))
    path = path_without(tmp_path, *APT_OFFLINE)
    for name, script in APT_OFFLINE.items():
        fake = tmp_path / "bin" / name
        fake.write_text(textwrap.dedent(script))
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", path)
    error = run_qemu_cell("04-msi-its", "qemu", tmp_path)
    assert_one_line_saying(error, "apt-cache depends linux-image-arm64 failed",
                           "Debian's archive (deb.debian.org) could not be reached",
                           "E: No packages found",
                           "apt-get update before it: Err:1 http://deb.debian.org/debian bookworm "
                           "InRelease | Temporary failure resolving 'deb.debian.org'",
                           '(in `real = vfiolab.lab_board("qemu", gic=gic, fresh=True, accel="tcg")')


@pytest.mark.parametrize("lab, cell_id", [("03-xgmac-irqfd", "code-40"), ("04-msi-its", "qemu")])
def test_a_qemu_section_without_qemu(tmp_path, monkeypatch, lab, cell_id):
    monkeypatch.setenv("PATH", path_without(tmp_path, "qemu-system-aarch64"))
    error = run_qemu_cell(lab, cell_id, tmp_path)
    assert_one_line_saying(error, "qemu-system-aarch64 is not installed",
                           "sudo apt install qemu-system-arm")


def test_vfiolab_console_boot_without_qemu_says_so_in_one_line(tmp_path):
    """The same error out of a vfiolab command: one line on stderr, exit status 1."""
    run = subprocess.run([sys.executable, "-m", "vfiolab", "console", "--boot"], capture_output=True,
                         text=True, timeout=60,
                         env=dict(os.environ, PATH=path_without(tmp_path, "qemu-system-aarch64")))
    assert (run.returncode, run.stdout) == (1, ""), run
    assert run.stderr.splitlines() == [
        "vfiolab console: qemu-system-aarch64 is not installed: sudo apt install qemu-system-arm. "
        "`vfiolab doctor qemu` checks everything this board needs here; on Debian or Ubuntu "
        "`./bootstrap test` installs it all"]


@needs_qemu("02-vfio-pl330")
def test_lab02_run_qemu_true_without_qemu(tmp_path, monkeypatch):
    """Lab 02 on the sim, the learner sets RUN_QEMU = True in its qemu section (here: ON_QEMU,
    which that cell copies), on a machine without QEMU: the section's cell says so in one line."""
    monkeypatch.setenv("PATH", path_without(tmp_path, "qemu-system-aarch64"))
    folder, nb = lab_copy("02-vfio-pl330", tmp_path)
    setup, section = ([c for c in nb.cells if grade_id(c) == name][0] for name in ("setup", "code-64"))
    nb.cells = [setup, nbformat.v4.new_code_cell("ON_QEMU = True"), section]
    execute(nb, folder, board="sim", timeout=120)
    assert not [o for c in nb.cells[:2] for o in c.outputs if o.output_type == "error"]
    errors = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    assert len(errors) == 1, nb.cells[2].outputs
    assert_one_line_saying(errors[0], "qemu-system-aarch64 is not installed",
                           "sudo apt install qemu-system-arm")
