"""`vfiolab bench irqfd` runs both paths and prints them side by side with their ratio (the sim
board here; the qemu board's figures come from the same code, see the issue note)."""
import argparse

from vfiolab.bench import irqfd


def test_bench_irqfd_prints_both_paths_and_their_ratio(capsys):
    assert irqfd.run(argparse.Namespace(rounds=3, board="sim")) == 0
    out = capsys.readouterr().out
    assert "irqfd+resamplefd" in out and "user space" in out and "user/irqfd" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("sim"))
    assert float(row.split()[-1].rstrip("x")) > 0


def test_bench_irqfd_refuses_zero_rounds(capsys):
    assert irqfd.run(argparse.Namespace(rounds=0, board="sim")) == 2
    assert "at least 1" in capsys.readouterr().out
