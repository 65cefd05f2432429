"""Defaults the CLI shows without importing the grader (nbformat's import alone takes seconds)."""
import os


def default_jobs():
    """Notebooks graded at once: two per core. A notebook waits for part of its time (kernel
    handshake, output idle messages, shutdown), and another can use the core meanwhile (sample
    lab, 20 notebooks on 2 cores: 12.2 s with 4 at a time, 15.5 s with 2)."""
    return 2 * (os.cpu_count() or 1)
