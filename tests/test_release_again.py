"""A released lab released again is unchanged, byte for byte: the workshop image releases the labs
at build time and `vfiolab lab` in the image releases them once more into the learner's workspace,
so a second release must keep the scaffolding around each prompt (it once replaced whole cells)."""
import filecmp
import os

import pytest

from vfiolab.grading.release import lab_folders, release_lab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LABS = lab_folders(os.path.join(ROOT, "labs")) + [os.path.join(ROOT, "tests", "sample_lab", "99-sample")]


def files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder)
                  for d, _, names in os.walk(folder) for f in names)


@pytest.mark.parametrize("lab", LABS, ids=os.path.basename)
def test_a_released_lab_released_again_is_unchanged(tmp_path, lab):
    once = release_lab(lab, tmp_path / "once")
    twice = release_lab(once, tmp_path / "twice")
    assert files(once) == files(twice)
    changed = [f for f in files(once) if not filecmp.cmp(os.path.join(once, f),
                                                           os.path.join(twice, f), shallow=False)]
    assert changed == [], f"released again, these differ: {changed}"


def test_vfiolab_root_names_the_labs_of_an_installed_vfiolab(tmp_path):
    """The workshop image's flow: labs released into $VFIOLAB_ROOT/labs at build time, then
    `vfiolab release` (as `vfiolab lab` does for the workspace) takes its labs from there."""
    import subprocess
    import sys
    root = tmp_path / "opt"
    release_lab(lab_folders(os.path.join(ROOT, "labs"))[-1], root / "labs")   # one lab, not the checkout's all
    done = subprocess.run([sys.executable, "-m", "vfiolab", "release", str(tmp_path / "again")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, VFIOLAB_ROOT=str(root)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(f"released {tmp_path / 'again'}") == len(os.listdir(root / "labs"))
    assert files(root / "labs") == files(tmp_path / "again")
    assert all(filecmp.cmp(root / "labs" / f, tmp_path / "again" / f, shallow=False)
               for f in files(root / "labs"))
