"""The C fuzz harnesses' common steps: compile a harness with C files of vfiolab/csrc under
AddressSanitizer and UndefinedBehaviorSanitizer, and run it so that the first report aborts it.

A test file holds only its harness source and what its output must say:

    HARNESS = sanitizer_harness.RANDOM_C + PL330_HARNESS_MAIN    # C text: rnd(), then main()
    harness = sanitizer_harness.fixture("pl330fuzz", HARNESS, "pl330.c", "flatmem.c")

    def test_x(harness):
        run = sanitizer_harness.run(harness, 1, 10000, timeout=300)
        assert run.returncode == 0, run.stderr[-4000:]

Whether the harness can be built here (a compiler, its sanitizer runtime) is decided in
build() only, and how long a run may take in run() only, so a machine where these cannot work
as written (e.g. under emulation) is handled in this one place."""
import os
import shutil
import subprocess
import sys

import pytest

import emulation

CSRC = os.path.join(os.path.dirname(__file__), "..", "vfiolab", "csrc")

# Every report is fatal (-fno-sanitize-recover, halt_on_error), leaks included, with a stack.
CFLAGS = ["-std=c11", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
          "-fno-omit-frame-pointer", "-Wall", "-Wextra", "-Wno-unused-parameter"]
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                 "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}

# The C the fuzz harnesses start with: the headers they use and one xorshift generator (each
# main() seeds `state` from its arguments).
RANDOM_C = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state;
static uint32_t rnd(void)
{
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (uint32_t)(state >> 11);
}
static inline uint64_t rnd64(void) { return (uint64_t)rnd() << 32 | rnd(); }
"""


def build(directory, source, *c_files):
    """Compile `source` (C text) with the named files of vfiolab/csrc into directory/harness and
    return its path. Skips the test when there is no C compiler or it has no sanitizer runtime;
    any other compile error fails it."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler: the sanitizer fuzz harness cannot be built")
    src = os.path.join(directory, "harness.c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(directory, "harness")
    cmd = [cc, *CFLAGS, "-I", CSRC, src, *(os.path.join(CSRC, c) for c in c_files), "-o", exe]
    compiled = subprocess.run(cmd, capture_output=True, text=True)
    if compiled.returncode and "sanitize" in compiled.stderr and "cannot find" in compiled.stderr:
        pytest.skip("this compiler has no sanitizer runtime (libasan/libubsan): "
                    + compiled.stderr.strip()[-200:])
    assert compiled.returncode == 0, compiled.stderr
    return exe


def fixture(name, source, *c_files):
    """A module-scoped pytest fixture giving the harness built once for the module's tests."""
    @pytest.fixture(scope="module")
    def harness(tmp_path_factory):
        return build(str(tmp_path_factory.mktemp(name)), source, *c_files)
    return harness


def run(exe, *args, timeout):
    """Run the harness with its arguments under the fatal sanitizer options; its stderr's tail is
    echoed (pytest shows it with a failure) and the CompletedProcess returned for the test to
    judge."""
    env = dict(os.environ, **SANITIZER_ENV)
    why = emulation.emulated()
    if why:
        # LeakSanitizer stops the process's threads with ptrace, which qemu-user does not emulate:
        # every run would end in its error. ASan and UBSan themselves work there, only slower.
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
        timeout *= emulation.SLOWDOWN
        sys.stderr.write(f"sanitizer_harness: {why}: LeakSanitizer off, timeout {timeout} s\n")
    done = subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    sys.stderr.write(done.stderr[-4000:])
    return done
