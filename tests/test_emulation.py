"""tests/emulation.py tells an emulated aarch64 (qemu-user: uname says aarch64, /proc/cpuinfo is the
x86 host's) from a native one, so timing limits scale and LeakSanitizer is left out only there."""
import os

import emulation
import sanitizer_harness

X86 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu vme\n"
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n"


def test_an_aarch64_with_an_x86_cpuinfo_is_emulated(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86)
    assert emulation.emulated("aarch64", cpuinfo) == "aarch64 emulated by qemu-user on AMD EPYC"
    assert emulation.emulated("x86_64", cpuinfo) is None
    cpuinfo.write_text(ARM)
    assert emulation.emulated("aarch64", cpuinfo) is None
    assert emulation.emulated("x86_64", cpuinfo).startswith("x86_64 emulated by qemu-user")


def test_limits_scale_and_leak_checks_stop_only_when_emulated(monkeypatch, tmp_path, capsys):
    native = emulation.emulated() is None
    assert emulation.scaled(10) == (10 if native else 10 * emulation.SLOWDOWN)
    monkeypatch.setattr(emulation, "emulated", lambda: "aarch64 emulated by qemu-user on AMD EPYC")
    assert emulation.scaled(10) == 10 * emulation.SLOWDOWN
    assert "10 x 10 s: aarch64 emulated" in emulation.limit_note(10)
    # The harness's environment and timeout, seen by a stand-in harness that prints them.
    script = tmp_path / "harness"
    script.write_text("#!/bin/sh\necho \"$ASAN_OPTIONS\"\n")
    os.chmod(script, 0o755)
    done = sanitizer_harness.run(str(script), timeout=1)
    assert "detect_leaks=0" in done.stdout
    assert "LeakSanitizer off, timeout 10 s" in capsys.readouterr().err
    monkeypatch.setattr(emulation, "emulated", lambda: None)
    assert "detect_leaks=1" in sanitizer_harness.run(str(script), timeout=1).stdout
