"""Build hook: compiles vfiolab's C DMA kernels (vfiolab/csrc) with cffi in out-of-line API mode.

Everything else about the package lives in pyproject.toml; setuptools needs this file only because
`cffi_modules` has no pyproject.toml spelling.
"""
import os
import shlex
import shutil
import sys
import sysconfig

from setuptools import setup


def require_build_tools():
    """Fail early, with what to install, instead of a compiler traceback halfway through pip."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[0]
    if not shutil.which(cc):
        sys.exit(f"vfiolab: no C compiler ({cc!r} is not on PATH). vfiolab compiles its DMA kernels "
                 "at install time. On Debian or Ubuntu: sudo apt install build-essential python3-dev")
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not os.path.exists(header):
        sys.exit(f"vfiolab: Python headers are missing ({header}). "
                 "On Debian or Ubuntu: sudo apt install python3-dev")


if {"egg_info", "dist_info", "sdist", "--version", "--name"}.isdisjoint(sys.argv):
    require_build_tools()

setup(cffi_modules=["vfiolab/csrc/build.py:ffibuilder"])
