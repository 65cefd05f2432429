"""The learner's version of lab folders: what `vfiolab release` writes.

Every file of a lab is copied except the hidden checks and caches; notebooks lose their solutions
and outputs. Then the release is searched for anything that would reveal a hidden check (its file,
its ids, its docstrings, solution markers) and refused if found.
"""
import os
import shutil

import nbformat

from .lab import HIDDEN_CHECKS, Lab
from .notebook import learner_version, solution_left

SKIP = {HIDDEN_CHECKS, "__pycache__", ".ipynb_checkpoints", ".pytest_cache"}


class ReleaseError(Exception):
    """A release that would leak what learners must not see."""


def release_lab(lab, out_dir):
    """Write the learner's version of `lab` (a Lab or a path) into out_dir/<lab name>."""
    lab = lab if isinstance(lab, Lab) else Lab(lab)
    target = os.path.join(out_dir, lab.name)
    if os.path.exists(target):
        shutil.rmtree(target)
    for folder, dirs, files in os.walk(lab.path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP and not d.startswith("."))
        rel = os.path.relpath(folder, lab.path)
        os.makedirs(os.path.join(target, rel), exist_ok=True)
        for name in sorted(files):
            if name in SKIP or name.startswith("hidden") or name.endswith(".pyc"):
                continue
            src, dst = os.path.join(folder, name), os.path.join(target, rel, name)
            if name.endswith(".ipynb"):
                nb = learner_version(nbformat.read(src, as_version=4))
                nbformat.write(nb, dst)
            else:
                shutil.copy2(src, dst)
    leaks = find_leaks(lab, target)
    if leaks:
        shutil.rmtree(target)
        raise ReleaseError(f"{lab.name}: the release would reveal hidden material: "
                           + "; ".join(leaks))
    return target


def hidden_markers(lab):
    """Strings that only the hidden checks contain: their ids and docstrings."""
    if not lab.has_hidden_checks():
        return []
    public = {c.id for c in lab.load(hidden=False)[0]}
    secret = [c for c in lab.load(hidden=True)[0] if c.hidden and c.id not in public]
    markers = [c.id for c in secret] + [c.title for c in secret if c.title]
    return [m for m in markers if len(m) >= 4]


def find_leaks(lab, released_dir):
    """Why released_dir reveals hidden material, or []."""
    markers, leaks = hidden_markers(lab), []
    for folder, _, files in os.walk(released_dir):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, released_dir)
            if name == HIDDEN_CHECKS:
                leaks.append(f"{rel} is the hidden checks file")
                continue
            try:
                text = open(path, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            for m in markers:
                if m in text:
                    leaks.append(f"{rel} mentions the hidden check {m!r}")
            if name.endswith(".ipynb") and solution_left(nbformat.reads(text, as_version=4)):
                leaks.append(f"{rel} still holds solution or hidden-test markers")
    return leaks


def lab_folders(root):
    """The lab folders under root: those holding a notebook."""
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
            and any(f.endswith(".ipynb") for f in os.listdir(os.path.join(root, d)))]


def checkout_labs():
    """The lab folders of this checkout's labs/ (what release and grade take by default), or []."""
    from ..paths import project_root
    root = project_root()
    return lab_folders(os.path.join(root, "labs")) if root else []


def release(labs, out_dir):
    """Release each lab folder in `labs` into out_dir; returns the released folders."""
    os.makedirs(out_dir, exist_ok=True)
    return [release_lab(lab, out_dir) for lab in labs]
