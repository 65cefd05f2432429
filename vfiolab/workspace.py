"""The learner's workspace: the released labs, copied into a work folder once and kept.

`vfiolab lab` (and `./bootstrap lab`) serve this folder, never the checkout's labs/: a learner sees
what `vfiolab release` makes (solutions out, hidden checks absent). A lab folder already in the
workspace is never written again, so a learner's answers survive updates of the course; a lab that
appears in a later update is added beside it. `prepare(fresh=True)` sets the old workspace aside
(renamed, never deleted) and starts a new one.

The workspace also carries the Jupyter configuration of the learner's server (in .vfiolab/, hidden
from Jupyter's file browser): nbgrader's menus, sidebar and server extensions are switched off there.
`server_command` builds that server's command line and environment.
"""
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

import nbformat

from .grading.lab import Lab
from .grading.release import checkout_labs, release_lab

ENV_VAR = "VFIOLAB_WORK"
CONFIG = ".vfiolab"   # dot-folder: Jupyter's contents API hides it from the learner
# nbgrader's JupyterLab extension (menus, sidebar, formgrader and assignment panels) and the server
# extensions behind them: an instructor's tools, meaningless and confusing in a learner's workspace.
NBGRADER_LABEXTENSION = "@jupyter/nbgrader"
NBGRADER_SERVER_EXTENSIONS = (
    "nbgrader.server_extensions.formgrader",
    "nbgrader.server_extensions.validate_assignment",
    "nbgrader.server_extensions.assignment_list",
    "nbgrader.server_extensions.course_list",
)


@dataclass
class Workspace:
    """What prepare() did. Usable as a path (os.fspath, open, os.path.join)."""
    path: str
    added: list = field(default_factory=list)       # lab names copied in this time
    kept: list = field(default_factory=list)        # lab names already there, left untouched
    set_aside: str | None = None                    # where fresh=True moved the old workspace

    def __fspath__(self):
        return self.path

    def __str__(self):
        return self.path

    @property
    def config_dir(self):
        """The Jupyter config folder of the learner's server (put first on JUPYTER_CONFIG_PATH)."""
        return os.path.join(self.path, CONFIG, "jupyter")


def default_path():
    """$VFIOLAB_WORK, or ~/vfiolab-work."""
    return os.path.abspath(os.path.expanduser(os.environ.get(ENV_VAR) or "~/vfiolab-work"))


def prepare(path=None, labs=None, fresh=False):
    """Create or update the learner's workspace at `path` (default: default_path()) and return it.

    labs: lab folders to release into it (default: every lab of this checkout's labs/).
    A lab already in the workspace is left exactly as it is; a missing one is released into it
    (written to a temporary folder first, then renamed into place, so an interrupted copy never
    leaves half a lab that later runs would keep). fresh=True first renames an existing workspace
    to <path>.old-<date>-<time>. Raises ReleaseError if a lab would leak hidden material, OSError
    if the folder cannot be written.
    """
    path = os.path.abspath(os.path.expanduser(os.fspath(path) if path else default_path()))
    labs = [lab if isinstance(lab, Lab) else Lab(lab)
            for lab in (checkout_labs() if labs is None else labs)]
    workspace = Workspace(path)
    if fresh and os.path.exists(path):
        workspace.set_aside = _aside_name(path)
        os.rename(path, workspace.set_aside)
    os.makedirs(path, exist_ok=True)
    for lab in labs:
        target = os.path.join(path, lab.name)
        if os.path.exists(target):
            workspace.kept.append(lab.name)
            continue
        staging = tempfile.mkdtemp(prefix=".incoming-", dir=path)
        try:
            released = release_lab(lab, staging)
            for name in os.listdir(released):
                if name.endswith(".ipynb"):
                    match_kernel(os.path.join(released, name))
            os.rename(released, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        workspace.added.append(lab.name)
    _write_server_config(workspace.config_dir)
    return workspace


def match_kernel(notebook_path):
    """Write the kernel's own kernelspec and language_info into a notebook's metadata.

    JupyterLab copies both from the kernel it starts into the notebook and marks the notebook
    modified when they differ, so a notebook a learner only opened would ask to be saved. They
    depend on this machine's Python (version) and kernelspec (display name): known only here.
    """
    from ipykernel.ipkernel import IPythonKernel
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
    nb = nbformat.read(notebook_path, as_version=4)
    name = nb.metadata.get("kernelspec", {}).get("name", "python3")
    try:
        spec = KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        return   # JupyterLab will ask which kernel to use; nothing to match
    nb.metadata["kernelspec"] = {"display_name": spec.display_name, "language": spec.language,
                                 "name": name}
    nb.metadata["language_info"] = dict(IPythonKernel.language_info)
    nbformat.write(nb, notebook_path)


def _aside_name(path):
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, n = f"{path}.old-{stamp}", 1
    while os.path.exists(candidate):
        n += 1
        candidate = f"{path}.old-{stamp}-{n}"
    return candidate


def _write_server_config(config_dir):
    """labconfig/page_config.json and jupyter_server_config.json that switch nbgrader off."""
    os.makedirs(os.path.join(config_dir, "labconfig"), exist_ok=True)
    files = {
        os.path.join(config_dir, "labconfig", "page_config.json"):
            {"disabledExtensions": {NBGRADER_LABEXTENSION: True}},
        os.path.join(config_dir, "jupyter_server_config.json"):
            {"ServerApp": {"jpserver_extensions": {name: False for name in NBGRADER_SERVER_EXTENSIONS}}},
    }
    for name, data in files.items():
        with open(name, "w") as f:
            json.dump(data, f, indent=1)


def server_command(root, extra=(), learner=True, default_url=None):
    """(argv, env) that start JupyterLab on `root`, a workspace (learner) or a checkout.

    The learner's server reads the workspace's config folder first (JUPYTER_CONFIG_PATH, which
    outranks the user's and the venv's config), so nbgrader stays off there and only there.
    """
    root = os.fspath(root)
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", *extra]
    if default_url:
        argv.insert(4, f"--LabApp.default_url={default_url}")
    if os.geteuid() == 0 and "--allow-root" not in argv:
        # Containers and fresh cloud machines often run as root; Jupyter refuses that by default.
        argv.append("--allow-root")
    env = dict(os.environ)
    if learner:
        config = os.path.join(root, CONFIG, "jupyter")
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
            [config] + [p for p in env.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p])
    return argv, env
