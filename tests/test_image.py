"""The workshop image (docker/): built here with docker/build (mmdebstrap base, podman --isolation
chroot), then, inside it: `vfiolab doctor` (buildah run), every lab's source notebook Run All on the
sim with the image's vfiolab (podman run, the sources mounted in for the run only), JupyterLab
answering /api on its published port on the released labs, the HEALTHCHECK passing; the learner
image's labs are the release of the checkout's and nothing hidden (hidden_checks.py, a solution, a
hidden check's id or text) is anywhere in its filesystem; the image run as docker/jupyterhub_config.py
makes the hub run it keeps a user's workspace across a container restart.

amd64 and arm64 (the emulated aarch64 container: binfmt_misc and qemu-user-static; it skips saying
why when they cannot be used here). VFIOLAB_IMAGE_ARM64=0 leaves arm64 out. Each step's seconds are
printed (pytest -s) so arm64's times can be read beside amd64's.
"""
import contextlib
import filecmp
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
    """amd64, and arm64 unless VFIOLAB_IMAGE_ARM64=0 (it roughly quadruples this file's time)."""
    return ["amd64"] + ([] if os.environ.get("VFIOLAB_IMAGE_ARM64") == "0" else ["arm64"])


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


# What .dockerignore keeps out of the build, kept out of the snapshot too (.git, .venv and build/
# at the top only: docker/build is the build script).
SNAPSHOT_SKIP = ("__pycache__", "*.so", "*.o", "*.egg-info", ".ipynb_checkpoints", ".pytest_cache")


def _snapshot_ignore(folder, names):
    top = {".git", ".venv", "build"} if os.path.samefile(folder, ROOT) else set()
    return top | shutil.ignore_patterns(*SNAPSHOT_SKIP)(folder, names)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A snapshot of the checkout: both images are built from it and judged against it, so edits
    made to the checkout while the test runs cannot make image and sources differ."""
    snapshot = tmp_path_factory.mktemp("checkout") / "vfiolab"
    shutil.copytree(ROOT, snapshot, symlinks=True, ignore=_snapshot_ignore)
    return str(snapshot)


@pytest.fixture(scope="module", params=_arches())
def image(request, source):
    arch = request.param
    if arch == "arm64" and os.uname().machine != "aarch64":
        why = binfmt_ready()
        if why:
            pytest.skip(why)
    start = time.monotonic()
    # One stream, so a failure shows the build log's tail in order.
    r = sh(["sh", "-c", f"nice -n 19 '{source}/docker/build' {arch} 2>&1"], BUILD_TIMEOUT[arch])
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


# Run inside the image by its own python: every lab's source notebook (mounted at /sources, never
# in the image), Run All on the sim with the image's vfiolab, in a copy of the lab's folder.
RUN_LABS = r"""
import glob, json, os, shutil, sys, tempfile, time
from nbclient import NotebookClient
import nbformat
os.environ["VFIOLAB_BOARD"] = "sim"
timeout = int(sys.argv[1])
out = {}
for nb_path in sorted(glob.glob("/sources/[0-9][0-9]-*/[0-9][0-9]-*.ipynb")):
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


def checkout_labs(root=ROOT):
    return sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(root, "labs", "[0-9][0-9]-*", "[0-9][0-9]-*.ipynb")))


def test_every_lab_runs_all_on_the_sim_in_podman_run(image, source):
    labs = checkout_labs(source)
    assert labs, "no labs/NN-*/NN-*.ipynb in the checkout"
    r = sh(["podman", "run", "--rm", "-i", *RUN, "-v", f"{source}/labs:/sources:ro", f"vfiolab:{image}",
            "python", "-", str(120 * SLOW[image])], 600 * SLOW[image], input=RUN_LABS)
    assert r.returncode == 0, tail(r.stdout + r.stderr)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\n[{image}] Run All on the sim (with kernel start): "
          + ", ".join(f"{lab} {v['seconds']} s" for lab, v in result.items()))
    assert sorted(result) == labs
    assert {lab: v["errors"] for lab, v in result.items() if v["errors"]} == {}


@contextlib.contextmanager
def mounted(image):
    """The image's filesystem, read here (podman image mount): no emulated process reads it."""
    r = sh(["podman", "image", "mount", image], 120)
    assert r.returncode == 0, r.stderr
    try:
        yield r.stdout.strip()
    finally:
        sh(["podman", "image", "unmount", image], 120)


def relative_files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, names in os.walk(folder) for f in names)


def test_the_image_labs_are_the_release_of_the_checkouts(image, source, tmp_path):
    from vfiolab.grading.release import lab_folders, release
    released = tmp_path / "released"
    release(lab_folders(os.path.join(source, "labs")), released)
    with mounted(f"vfiolab:{image}") as fs:
        labs = os.path.join(fs, "opt", "vfiolab", "labs")
        assert sorted(os.listdir(labs)) == checkout_labs(source)
        assert relative_files(labs) == relative_files(released)
        differ = [f for f in relative_files(released)
                  if not filecmp.cmp(os.path.join(labs, f), os.path.join(released, f), shallow=False)]
        # No source tree either: /opt/vfiolab is the venv and the released labs, nothing else.
        assert sorted(os.listdir(os.path.join(fs, "opt", "vfiolab"))) == [".venv", "labs"]
    assert differ == [], f"the image's release differs from the checkout's in {differ}"


# The one place a solution marker may appear in the learner image: the code that strips them.
STRIPPER = ("/site-packages/vfiolab/grading/notebook.py",
            "/site-packages/vfiolab/grading/__pycache__/notebook.cpython-")


def test_nothing_hidden_anywhere_in_the_learner_image(image, source, tmp_path):
    """No hidden_checks.py, no solution markers, no hidden check's id or docstring in any file of
    the learner image (the whole filesystem, not just the workspace)."""
    from vfiolab.grading.lab import HIDDEN_CHECKS, Lab
    from vfiolab.grading.release import hidden_markers, lab_folders
    markers = sorted({m for lab in lab_folders(os.path.join(source, "labs")) for m in hidden_markers(Lab(lab))})
    assert markers, "the checkout's labs have no hidden checks to look for"
    patterns = tmp_path / "markers"
    patterns.write_text("\n".join(markers + ["### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"]) + "\n")
    start = time.monotonic()
    with mounted(f"vfiolab:{image}") as fs:
        named = [os.path.join(d, f)[len(fs):] for d, _, names in os.walk(fs) for f in names
                 if f == HIDDEN_CHECKS]
        # grep -F: every marker at once over every file (binary files too: a .pyc keeps strings).
        hits = sh(["grep", "-rlaF", "-f", str(patterns), fs], 1800)
        assert hits.returncode in (0, 1), hits.stderr
        found = [path[len(fs):] for path in hits.stdout.splitlines()]
        stripper = [p for p in found if p.startswith("/opt/vfiolab/.venv/") and any(s in p for s in STRIPPER)]
        if stripper:
            # The stripper holds the solution markers, never a check's id or text.
            ids = tmp_path / "ids"
            ids.write_text("\n".join(markers) + "\n")
            again = sh(["grep", "-laF", "-f", str(ids), *(fs + p for p in stripper)], 120)
            assert again.stdout == "", again.stdout
    print(f"\n[{image}] searched the learner image for {len(markers)} hidden markers "
          f"in {time.monotonic() - start:.0f} s")
    assert named == []
    assert sorted(set(found) - set(stripper)) == []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_jupyterlab_answers_api_on_its_published_port_and_is_healthy(image, source):
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
        # `vfiolab lab` made the learner workspace from the image's released labs, as the non-root user.
        assert "your work folder is /home/learner/vfiolab-work" in logs.stdout + logs.stderr
        assert "new labs copied in: " + ", ".join(checkout_labs(source)) in logs.stdout + logs.stderr
        who = sh(["podman", "exec", name, "id", "-un"], 60)
        assert who.stdout.strip() == "learner"
        health = sh(["podman", "healthcheck", "run", name], 60 * SLOW[image])
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        sh(["podman", "rm", "-f", "-t", "5", name], 120)


def load_hub_config():
    """docker/jupyterhub_config.py as JupyterHub loads it: get_config() gives the traitlets Config."""
    from traitlets.config import Config
    config = Config()
    path = os.path.join(ROOT, "docker", "jupyterhub_config.py")
    exec(compile(open(path).read(), path, "exec"), {"get_config": lambda: config, "__file__": path})
    return config


def test_the_hub_config_names_what_the_image_has(image):
    hub = load_hub_config()
    spawner = hub.DockerSpawner
    assert hub.JupyterHub.spawner_class == "dockerspawner.DockerSpawner"
    assert spawner.image == "vfiolab:amd64"        # docker/build's tag (VFIOLAB_IMAGE picks another)
    env = json.loads(sh(["podman", "image", "inspect", "--format", "{{json .Config.Env}}",
                         f"vfiolab:{image}"], 60).stdout)
    work = dict(e.split("=", 1) for e in env)["VFIOLAB_WORK"]
    assert "notebook_dir" not in spawner     # `vfiolab lab` roots JupyterLab in the workspace itself
    assert list(spawner.volumes.values()) == [work] and "{username}" in list(spawner.volumes)[0]
    found = sh(["podman", "run", "--rm", *RUN, f"vfiolab:{image}", "sh", "-c", f"command -v {spawner.cmd[0]}"],
               120 * SLOW[image])
    assert found.returncode == 0, f"{spawner.cmd[0]} is not on the image's PATH"


def test_a_hub_spawned_workspace_survives_a_container_restart(image, source):
    """The container as the hub's DockerSpawner starts it from docker/jupyterhub_config.py: its cmd
    plus the spawner's arguments, the image's user, the hub's environment, the
    user's volume on the workspace. A file written there and the learner's edit of a notebook are
    still there in a new container on the same volume, and `vfiolab lab` leaves them alone."""
    spawner = load_hub_config().DockerSpawner
    volume = list(spawner.volumes)[0].format(username=f"hubtest{os.getpid()}")
    work = spawner.volumes[list(spawner.volumes)[0]]
    # Spawner.get_args(): --ip, --port, then --notebook-dir only when notebook_dir is set.
    argv = [*spawner.cmd, "--ip=0.0.0.0", "--port=8888",
            *([f"--notebook-dir={spawner.notebook_dir}"] if "notebook_dir" in spawner else [])]
    env = ["-e", "JUPYTERHUB_USER=hubtest", "-e", "JUPYTERHUB_SERVICE_PREFIX=/user/hubtest/",
           "-e", "JUPYTERHUB_API_URL=http://hub:8081/hub/api", "-e", "JUPYTERHUB_API_TOKEN=not-checked-here"]
    lab = checkout_labs(source)[0]
    notebook = f"{work}/{lab}/{lab}.ipynb"

    def start(name):
        port = free_port()
        r = sh(["podman", "run", "-d", "--name", name, *RUN, *env, "-p", f"127.0.0.1:{port}:8888",
                "-v", f"{volume}:{work}", f"vfiolab:{image}", *argv], 120)
        assert r.returncode == 0, r.stderr
        deadline = time.monotonic() + 120 * SLOW[image]
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=5)
                return sh(["podman", "logs", name], 60)
            except OSError:
                time.sleep(1)
        logs = sh(["podman", "logs", name], 60)
        pytest.fail(f"no answer on /api:\n{tail(logs.stdout + logs.stderr)}")

    names = [f"vfiolab-hub-{image}-{os.getpid()}-{i}" for i in (1, 2)]
    try:
        first = start(names[0])
        assert "new labs copied in" in first.stdout + first.stderr
        edit = sh(["podman", "exec", names[0], "sh", "-c",
                   f"echo mine > {work}/notes.txt && echo '{{}}' > {work}/{lab}/answer.json"
                   f" && sed -i 's/YOUR CODE HERE/my answer/' {notebook} && id -un"], 60)
        assert edit.returncode == 0 and edit.stdout.strip() == "learner", edit.stdout + edit.stderr
        sh(["podman", "rm", "-f", "-t", "5", names[0]], 120)       # the hub's remove=True
        second = start(names[1])
        assert f"your labs, left as you left them: {', '.join(checkout_labs(source))}" in second.stdout + second.stderr
        kept = sh(["podman", "exec", names[1], "sh", "-c",
                   f"cat {work}/notes.txt; ls {work}/{lab}; grep -c 'my answer' {notebook}"], 60)
        assert kept.stdout.split()[0] == "mine" and "answer.json" in kept.stdout, kept.stdout
        assert int(kept.stdout.split()[-1]) > 0, "the learner's edit of the notebook is gone"
    finally:
        for name in names:
            sh(["podman", "rm", "-f", "-t", "5", name], 120)
        sh(["podman", "volume", "rm", "-f", volume], 120)


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
