"""What a command's start costs besides its own work: the imports of TensorFlow, Beam and TFX (about 10 s of every
run, the whole of a cached re-run but 1 s), made cheaper without changing what is imported."""

import contextlib
import functools
import gc


def scan_installed_distributions_once() -> None:
    """Makes importlib.metadata.packages_distributions() read the installed packages once per process.

    Each Google Cloud client checks the Python version when imported and names its package in the warning by
    calling packages_distributions(), which reads the metadata of every installed distribution (0.17-0.19 s here):
    api_core, BigQuery, BigQuery Storage and Pub/Sub do it on every run's import of Beam and TensorFlow. Nothing is
    installed while a command runs, so the first answer stands; each caller gets its own copy.
    """
    from importlib import metadata

    if hasattr(metadata.packages_distributions, "scanned"):
        return
    scanned = functools.lru_cache(maxsize=1)(metadata.packages_distributions)

    @functools.wraps(metadata.packages_distributions)
    def packages_distributions():
        return {package: list(names) for package, names in scanned().items()}

    packages_distributions.scanned = scanned
    metadata.packages_distributions = packages_distributions


@contextlib.contextmanager
def heavy_imports():
    """Imports the stack without the cyclic garbage collector, then leaves what they built out of later collections.

    Importing TensorFlow, Beam and TFX allocates millions of objects, and the collector runs about 8 full
    collections over that growing heap on the way (0.7-1.0 s of the 10 s here); the modules, classes and functions
    built live until the process ends, so nothing is lost by not scanning them. gc.freeze() moves them to the
    permanent generation: the command's own collections afterwards scan only what the command allocates.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
