"""The workshop image (docker/): built here with docker/build (mmdebstrap base, podman --isolation
chroot), then, inside it: `vfiolab doctor` (buildah run), every labs/NN-*/ notebook Run All on the sim
(podman run), JupyterLab answering /api on its published port and the HEALTHCHECK passing.

amd64 always (when the tools are here); arm64, the emulated aarch64 container, only with
VFIOLAB_IMAGE_ARM64=1 (it needs binfmt_misc and qemu-user-static, and several times amd64's time).
Each step's seconds are printed (pytest -s) so arm64's times can be read beside amd64's.
"""
import glob
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ("podman", "buildah", "mmdebstrap")
# podman run on this kind of host: crun cannot use its cgroups, and the default rlimits cannot be set.
RUN = ["--runtime=runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]
BUILD_TIMEOUT = {"amd64": 1800, "arm64": 2700}
SLOW = {"amd64": 1, "arm64": 10}        # emulation's factor on every in-image timeout

pytestmark = pytest.mark.timeout(3600)


def _skip_reason():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (./bootstrap test installs them)"
    if os.geteuid() != 0:
        return "the image build needs root (mmdebstrap and podman import as root)"
    try:
        info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "podman info did not answer within 60 s: podman cannot run here"
    if info.returncode:
        return f"podman cannot run here: {(info.stderr.strip().splitlines() or ['?'])[-1]}"
    return None


_REASON = _skip_reason()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)


def _arches():
    arches = ["amd64"]
    if os.environ.get("VFIOLAB_IMAGE_ARM64") == "1":
        arches.append("arm64")
    return arches


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def sh(argv, timeout, **kw):
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        pytest.fail(f"{' '.join(argv[:6])}... did not end within {timeout} s:\n{tail(out)}")


def binfmt_ready():
    """Mount binfmt_misc and enable qemu-aarch64 (F flag) when it is not; None or why not."""
    status = "/proc/sys/fs/binfmt_misc/status"
    if not os.path.exists(status):
        r = sh(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], 30)
        if r.returncode:
            return f"cannot mount binfmt_misc here ({r.stderr.strip()}): arm64 needs it"
    entry = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
    if not os.path.exists(entry) and shutil.which("update-binfmts"):
        sh(["update-binfmts", "--enable", "qemu-aarch64"], 30)
    if not os.path.exists(entry) or "F" not in open(entry).read().split("flags:")[1].split()[0]:
        return "qemu-aarch64 is not in binfmt_misc with the F flag (install qemu-user-static)"
    return None


@pytest.fixture(scope="module", params=_arches())
def image(request):
    arch = request.param
    if arch == "arm64" and os.uname().machine != "aarch64":
        why = binfmt_ready()
        if why:
            pytest.skip(why)
    start = time.monotonic()
    # One stream, so a failure shows the build log's tail in order.
    r = sh(["sh", "-c", f"nice -n 19 '{ROOT}/docker/build' {arch} 2>&1"], BUILD_TIMEOUT[arch])
    assert r.returncode == 0, f"docker/build {arch} failed:\n{tail(r.stdout)}"
    size = sh(["podman", "image", "inspect", "--format", "{{.Size}}", f"vfiolab:{arch}"], 60)
    print(f"\n[{arch}] build {time.monotonic() - start:.0f} s, image {int(size.stdout) / 1e9:.2f} GB")
    return arch


def test_doctor_in_buildah_run(image):
    ctr = sh(["buildah", "from", "--pull-never", f"vfiolab:{image}"], 120)
    assert ctr.returncode == 0, ctr.stderr
    name = ctr.stdout.strip()
    try:
        start = time.monotonic()
        r = sh(["buildah", "run", "--isolation", "chroot", name, "--", "vfiolab", "doctor"],
               60 * SLOW[image])
        print(f"\n[{image}] vfiolab doctor {time.monotonic() - start:.1f} s")
    finally:
        sh(["buildah", "rm", name], 120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sim   usable" in r.stdout
    assert "qemu  usable" in r.stdout and "guest image ready" in r.stdout   # pre-fetched: no download
    # The host board is judged on this machine's kernel, from inside the container.
    assert "host  " in r.stdout and "IOMMU groups:" in r.stdout


# Run inside the image by its own python: every lab's source notebook, Run All on the sim, in a copy.
RUN_LABS = r"""
import glob, json, os, shutil, sys, tempfile, time
from nbclient import NotebookClient
import nbformat
os.environ["VFIOLAB_BOARD"] = "sim"
timeout = int(sys.argv[1])
out = {}
for nb_path in sorted(glob.glob("/opt/vfiolab/labs/[0-9][0-9]-*/[0-9][0-9]-*.ipynb")):
    lab = os.path.basename(os.path.dirname(nb_path))
    folder = shutil.copytree(os.path.dirname(nb_path), os.path.join(tempfile.mkdtemp(), lab))
    nb = nbformat.read(nb_path, as_version=4)
    start = time.monotonic()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": folder}}).execute()
    errors = [(i, o.ename + ": " + o.evalue) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    out[lab] = {"seconds": round(time.monotonic() - start, 1), "errors": errors}
print(json.dumps(out))
"""


def test_every_lab_runs_all_on_the_sim_in_podman_run(image):
    labs = sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(ROOT, "labs", "[0-9][0-9]-*", "[0-9][0-9]-*.ipynb")))
    assert labs, "no labs/NN-*/NN-*.ipynb in the checkout"
    r = sh(["podman", "run", "--rm", "-i", *RUN, f"vfiolab:{image}", "python", "-", str(120 * SLOW[image])],
           600 * SLOW[image], input=RUN_LABS)
    assert r.returncode == 0, tail(r.stdout + r.stderr)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\n[{image}] Run All on the sim (with kernel start): "
          + ", ".join(f"{lab} {v['seconds']} s" for lab, v in result.items()))
    assert sorted(result) == labs, "the image's labs are not the checkout's"
    assert {lab: v["errors"] for lab, v in result.items() if v["errors"]} == {}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_answers_api_on_its_published_port_and_is_healthy(image):
    port = free_port()
    name = f"vfiolab-test-{image}-{os.getpid()}"
    r = sh(["podman", "run", "-d", "--name", name, *RUN, "-p", f"127.0.0.1:{port}:8888",
            f"vfiolab:{image}"], 120)
    assert r.returncode == 0, r.stderr
    try:
        start, answer = time.monotonic(), None
        while time.monotonic() - start < 120 * SLOW[image] and answer is None:
            try:
                answer = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=5))
            except OSError:
                time.sleep(1)
        logs = sh(["podman", "logs", name], 60)
        assert answer is not None, f"no answer on /api:\n{tail(logs.stdout + logs.stderr)}"
        print(f"\n[{image}] JupyterLab answered /api after {time.monotonic() - start:.0f} s "
              f"(jupyter_server {answer.get('version')})")
        assert "version" in answer
        # The learner workspace, not the sources, as the non-root user.
        assert "vfiolab-work" in logs.stdout + logs.stderr
        who = sh(["podman", "exec", name, "id", "-un"], 60)
        assert who.stdout.strip() == "learner"
        health = sh(["podman", "healthcheck", "run", name], 60 * SLOW[image])
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        sh(["podman", "rm", "-f", "-t", "5", name], 120)


def test_binder_folder_steps_give_a_working_environment_in_a_clean_base():
    """repo2docker needs a Docker daemon, so its steps are run by hand: apt.txt's packages, then
    postBuild from the repository root as a non-root user, in the bare mmdebstrap amd64 base."""
    base = "vfiolab-base:bookworm-amd64"
    if sh(["podman", "image", "exists", base], 60).returncode:
        pytest.skip(f"{base} not made yet (test_image's amd64 build makes it)")
    packages = open(os.path.join(ROOT, "binder", "apt.txt")).read().split()
    script = (
        "set -e; apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
        f"--no-install-recommends python3-venv {' '.join(packages)} >/dev/null; "
        "useradd -m jovyan; mkdir /home/jovyan/repo; tar -C /src --exclude=./.venv --exclude=./.git "
        "--exclude='*.so' -c . | tar -C /home/jovyan/repo -x; chown -R jovyan /home/jovyan; "
        "su jovyan -c 'set -e; python3 -m venv ~/env; . ~/env/bin/activate; cd ~/repo; "
        "VFIOLAB_NO_PREFETCH=1 ./binder/postBuild >/dev/null; cd ~; "
        "ls vfiolab-work; vfiolab doctor sim'")
    start = time.monotonic()
    r = sh(["podman", "run", "--rm", *RUN, "-v", "/etc/ssl/certs:/etc/ssl/certs:ro",
            "-v", f"{ROOT}:/src:ro", base, "sh", "-c", script], 1500)
    print(f"\n[binder] apt.txt + postBuild in a clean base {time.monotonic() - start:.0f} s")
    assert r.returncode == 0, tail(r.stdout + r.stderr)
    labs = sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(ROOT, "labs", "[0-9][0-9]-*", "[0-9][0-9]-*.ipynb")))
    for lab in labs:
        assert lab in r.stdout, f"{lab} missing from the Binder workspace:\n{r.stdout}"
    assert "sim   usable" in r.stdout
