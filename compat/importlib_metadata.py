"""Python's importlib.metadata: `packages_distributions()` read once per process.

Replaces: `importlib.metadata.packages_distributions` (public, replaced process-wide) with a cached copy.
Why: each Google Cloud client checks the Python version when imported and names its package in the warning by
calling packages_distributions(), which reads the metadata of every installed distribution: api_core, BigQuery,
BigQuery Storage and Pub/Sub do it on every import of Beam and TensorFlow (docs/benchmarks.md, start-up). Nothing
is installed while a command runs, so the first answer stands; each caller gets its own copy.
Compared with Python's own path by: tests/test_compat_unit.py (the same mapping, a copy per call, and the fallback).
"""

import functools

import compat

DISTRIBUTIONS = ("python",)


def scan_installed_distributions_once() -> None:
    """Makes packages_distributions() read the installed packages once per process (idempotent)."""
    from importlib import metadata

    if hasattr(metadata.packages_distributions, "scanned") or not compat.supported("importlib_metadata", "python"):
        return
    scanned = functools.lru_cache(maxsize=1)(metadata.packages_distributions)

    @functools.wraps(metadata.packages_distributions)
    def packages_distributions():
        return {package: list(names) for package, names in scanned().items()}

    packages_distributions.scanned = scanned
    metadata.packages_distributions = packages_distributions
