"""A lab folder on disk: its notebook, its public checks (checks.py) and hidden checks
(hidden_checks.py, the instructor's only: never released, never loaded in a learner's kernel).
"""
import hashlib
import importlib.util
import os
import sys
import threading

from .checks import checks_in, observers_in

PUBLIC_CHECKS = "checks.py"
HIDDEN_CHECKS = "hidden_checks.py"
_loading = threading.Lock()  # hidden_checks.py sees checks.py as the module "checks" while loading


class LabError(Exception):
    """A lab folder that is not laid out as the author's guide says."""


class Lab:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path.rstrip(os.sep))
        if not os.path.isdir(self.path):
            raise LabError(f"no lab folder at {self.path}")

    def __repr__(self):
        return f"Lab({self.path!r})"

    @property
    def notebooks(self):
        return sorted(f for f in os.listdir(self.path) if f.endswith(".ipynb"))

    @property
    def notebook(self):
        """The lab's notebook: <folder name>.ipynb, or else the folder's only notebook."""
        books = self.notebooks
        if f"{self.name}.ipynb" in books:
            return f"{self.name}.ipynb"
        if len(books) != 1:
            raise LabError(f"{self.name}: a lab folder holds exactly one notebook, found {books}")
        return books[0]

    def file(self, name):
        return os.path.join(self.path, name)

    def has_hidden_checks(self):
        return os.path.exists(self.file(HIDDEN_CHECKS))

    def public_source(self):
        """The text of checks.py: the grader sends it into the kernel, whatever the learner did."""
        path = self.file(PUBLIC_CHECKS)
        return open(path).read() if os.path.exists(path) else ""

    def load(self, hidden=False):
        """(checks, observers) of this lab; with hidden=True the hidden checks follow the public."""
        public = _load_module(self.file(PUBLIC_CHECKS), f"{self.name}.checks")
        checks, observers = checks_in(vars(public)), observers_in(vars(public))
        for c in checks:
            if c.hidden:
                raise LabError(f"{self.name}: check {c.id!r} is hidden=True but lives in "
                               f"{PUBLIC_CHECKS}, which learners receive: move it to {HIDDEN_CHECKS}")
        if hidden and self.has_hidden_checks():
            with _loading:
                sys.modules["checks"], saved = public, sys.modules.get("checks")
                try:
                    secret = _load_module(self.file(HIDDEN_CHECKS), f"{self.name}.hidden_checks")
                finally:
                    if saved is None:
                        del sys.modules["checks"]
                    else:
                        sys.modules["checks"] = saved
            for c in checks_in(vars(secret)):
                if not c.hidden:
                    raise LabError(f"{self.name}: check {c.id!r} in {HIDDEN_CHECKS} must say hidden=True")
                checks.append(c)
            if observers_in(vars(secret)):
                raise LabError(f"{self.name}: observers run in the learner's kernel, so they belong "
                               f"in {PUBLIC_CHECKS}, not {HIDDEN_CHECKS}")
        ids = [c.id for c in checks]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise LabError(f"{self.name}: check ids must be unique: {duplicates}")
        return checks, observers


def _load_module(path, label):
    """Execute a checks file as a fresh module (never cached in sys.modules)."""
    if not os.path.exists(path):
        raise LabError(f"missing {path}")
    unique = "vfiolab_lab_" + hashlib.sha1(f"{label}:{path}".encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(unique, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_lab(folder=None):
    """The lab a notebook belongs to: its folder (a notebook's kernel starts there) holds checks.py."""
    here = os.path.abspath(folder or os.getcwd())
    if not os.path.exists(os.path.join(here, PUBLIC_CHECKS)):
        raise LabError(f"no {PUBLIC_CHECKS} in {here}: open the notebook from its lab folder")
    return Lab(here)
