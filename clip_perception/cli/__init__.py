"""Thin entry points: each ``main(argv=None)`` parses arguments and calls the library.

Importing this package (every entry point does, first) sets what a tool's process needs before
torch loads: ``prefer_passive_openmp``.
"""
import os


def prefer_passive_openmp() -> None:
    """OpenMP threads that spin at every barrier made torch eager 3-8x slower whenever another
    thread or process took one of the cores (2 cores: 0.3 img/s spinning vs 1.0-1.9 passive,
    docs/results/node.md); a robot's CPU is never idle. Read once, when torch's OpenMP runtime
    loads, so this must run before torch is imported. A value set by the user wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


prefer_passive_openmp()
