"""What a command's start costs besides its own work: the imports of TensorFlow, Beam and TFX (most of a cached
re-run: docs/benchmarks.md), made cheaper without changing what is imported."""

import contextlib
import gc


@contextlib.contextmanager
def heavy_imports():
    """Imports the stack without the cyclic garbage collector, then leaves what they built out of later collections.

    Importing TensorFlow, Beam and TFX allocates millions of objects, and the collector runs about 8 full
    collections over that growing heap on the way; the modules, classes and functions
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
