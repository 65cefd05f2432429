"""Benchmarks for `vfiolab bench NAME`: each module defines HELP, add_arguments(parser), run(args).

Every benchmark prints its figures beside a reference measured in the same run (a plain memcpy,
QEMU's own model, nbgrader), as ratios, using medians of several runs.
"""
import statistics
import time


def median_seconds(fn, runs=5):
    """Median wall time of fn() over `runs` calls (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
