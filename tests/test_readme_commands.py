"""The README's promises: the first command serves the learner's workspace in JupyterLab; the tool's commands answer."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VFIOLAB = [sys.executable, "-m", "vfiolab"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def readme_commands():
    """The shell commands in the README's fenced code blocks, in order."""
    text = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```(?:sh|bash|shell)\n(.*?)```", text, re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def test_readme_has_exactly_two_commands_and_ci_runs_the_second():
    first, second = readme_commands()
    assert first.startswith("./bootstrap lab") and second.startswith("./bootstrap test")
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert "exec ./bootstrap test" in ci


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def test_first_command_serves_the_labs_and_stops_cleanly(tmp_path):
    port, token = free_port(), "vfiolab-test"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               VFIOLAB_WORK=str(tmp_path / "work"))
    server = subprocess.Popen(
        [os.path.join(ROOT, "bootstrap"), "lab", "--no-browser", f"--port={port}",
         f"--IdentityProvider.token={token}", "--ServerApp.ip=127.0.0.1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, f"JupyterLab exited early:\n{server.stdout.read()}"
            try:
                get(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "JupyterLab did not answer within 120 s"
                time.sleep(0.5)
        status, page = get(f"{base}/lab?token={token}")
        assert status == 200 and "JupyterLab" in page
        # The learner's workspace (tests/test_learner_workspace.py looks inside it): the labs with
        # a notebook, released.
        status, body = get(f"{base}/api/contents?token={token}")
        listing = {item["name"] for item in json.loads(body)["content"]}
        assert {"01-platform-bus", "02-vfio-pl330"} <= listing
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            pytest.fail("JupyterLab did not stop within 30 s of SIGTERM")
    assert code in (0, -signal.SIGTERM), f"JupyterLab exit status {code}"


def run_vfiolab(*args):
    return subprocess.run([*VFIOLAB, *args], capture_output=True, text=True, timeout=120)


def test_doctor_reports_every_board():
    result = run_vfiolab("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    for board in ("sim", "qemu", "host"):
        assert re.search(rf"^{board}\s+(usable|NOT usable)", result.stdout, re.M), result.stdout
    assert "C DMA kernels (vfiolab._hw) are built" in result.stdout


def test_doctor_host_tells_what_to_do_when_vfio_is_absent():
    result = run_vfiolab("doctor", "host")
    if os.path.exists("/dev/vfio/vfio"):
        pytest.skip("this machine has /dev/vfio/vfio")
    assert result.returncode == 1
    assert "modprobe vfio" in result.stdout


def test_unknown_board_and_unknown_command_are_clear():
    assert "unknown board" in run_vfiolab("doctor", "fpga").stdout
    result = run_vfiolab("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_missing_compiler_gives_a_clear_message(tmp_path):
    env = dict(os.environ, CC="/nonexistent/cc")
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--build-temp", str(tmp_path)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "no C compiler" in result.stderr and "build-essential" in result.stderr


def test_c_kernels_are_importable_and_work():
    from vfiolab._hw import ffi, lib
    a, b = ffi.new("uint8_t[]", b"abcdefgh"), ffi.new("uint8_t[]", b"abcdXfgh")
    assert lib.vfl_first_difference(a, b, 8) == 4
    lib.vfl_memcpy(b, a, 8)
    assert lib.vfl_first_difference(a, b, 8) == 8
