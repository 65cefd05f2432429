"""The grader's kernel sandbox, driven directly: a program started the way the grader starts a
learner's kernel must not read vfiolab's own checkout (labs/*/hidden_checks.py live there) nor a
top-level folder of the machine that is not the system's, wherever the checkout was cloned
(CI's clone was outside every folder the sandbox first listed, and the labs' hidden checks leaked)."""
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

import vfiolab
from vfiolab.grading import sandbox

CHECKOUT = os.path.dirname(os.path.dirname(os.path.realpath(vfiolab.__file__)))
LAB_SECRET = os.path.join(CHECKOUT, "labs", "01-platform-bus", "hidden_checks.py")

PROBE = """
import json, os, sys
seen = {}
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            seen[path] = f.read()[:40]
    except OSError as e:
        seen[path] = "unreadable: " + e.strerror
import vfiolab.hw.pl330  # the kernel still has vfiolab and its C extension
print(json.dumps(seen))
"""


def run_sandboxed(tmp_path, *paths, env=None, cwd=None):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = tmp_path / "config.json"
    report = tmp_path / "report.json"
    config.write_text(json.dumps({"scratch": str(scratch), "hide": [], "report": str(report)}))
    done = subprocess.run([sys.executable, "-m", "vfiolab.grading.sandbox", str(config), "--",
                           sys.executable, "-c", PROBE, *paths],
                          capture_output=True, text=True, timeout=60, env=env, cwd=cwd)
    assert done.returncode == 0, done.stderr
    isolation = json.loads(report.read_text())["isolation"]
    if isolation == "none":
        pytest.skip("no Linux namespaces on this machine: the grader warns the instructor instead")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_source_checkout_is_private_wherever_it_is():
    assert CHECKOUT in sandbox.private_roots()


def test_every_non_system_top_level_folder_is_private():
    for name in os.listdir("/"):
        path = os.path.join("/", name)
        if name not in sandbox.SYSTEM_ROOTS and os.path.isdir(path) and not os.path.islink(path):
            assert path in sandbox.private_roots()


def test_a_sandboxed_kernel_cannot_read_the_labs_hidden_checks(tmp_path):
    assert os.path.exists(LAB_SECRET)
    seen = run_sandboxed(tmp_path, LAB_SECRET)
    assert seen[LAB_SECRET].startswith("unreadable"), seen


@pytest.mark.skipif(os.geteuid() != 0 or not os.access("/", os.W_OK),
                    reason="needs to create a top-level folder (root)")
def test_a_sandboxed_kernel_cannot_read_an_unlisted_top_level_folder(tmp_path):
    top = f"/vfiolab-test-{uuid.uuid4().hex[:8]}"
    os.mkdir(top)
    try:
        secret = os.path.join(top, "hidden_checks.py")
        with open(secret, "w") as f:
            f.write("hidden=True\n")
        os.chmod(top, 0o755)
        os.chmod(secret, 0o644)
        seen = run_sandboxed(tmp_path, secret)
        assert seen[secret].startswith("unreadable"), seen
    finally:
        shutil.rmtree(top)


def test_the_checkout_stays_private_when_it_is_on_the_python_path(tmp_path):
    """PYTHONPATH=<checkout> (CI running from a clone that is not installed, or an older editable
    install's path .pth) puts the checkout on sys.path; binding sys.path back in must not bring
    labs/*/hidden_checks.py with it. The kernel still imports vfiolab."""
    env = dict(os.environ, PYTHONPATH=CHECKOUT)
    seen = run_sandboxed(tmp_path, LAB_SECRET, env=env, cwd=str(tmp_path))
    assert seen[LAB_SECRET].startswith("unreadable"), seen
