"""`vfiolab bench irqfd` runs both paths on the sim and prints them side by side with their ratio;
asked for the qemu board it says why there is no figure instead of printing one."""
import argparse

from vfiolab.bench import irqfd


def test_bench_irqfd_prints_both_paths_and_their_ratio(capsys):
    assert irqfd.run(argparse.Namespace(rounds=3, board="sim")) == 0
    out = capsys.readouterr().out
    assert "irqfd + resamplefd" in out and "user space path" in out and "user space / irqfd" in out
    ratio = float(out.rsplit("user space / irqfd", 1)[1].strip().rstrip("x"))
    assert ratio > 0


def test_bench_irqfd_on_qemu_says_what_is_missing(capsys):
    assert irqfd.run(argparse.Namespace(rounds=3, board="qemu")) == 1
    assert "does not carry KVM" in capsys.readouterr().out
