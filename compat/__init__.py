"""Every override of a library's private code, in one package, each checked against the versions it was written for.

A module here replaces or extends something a library does not offer publicly (a TFMA combiner, TFX's Transform
processor, Beam's gzip writer, an AutoGraph rule table...) to make a step faster without changing its result. Each
says at its top what it replaces, why, and which test compares it with the library's own path. Each asks
`supported(...)` before it acts: when an installed library is not the version its override was written against, the
override says so once (a warning in the run's log) and the library's own path runs instead, slower and otherwise the
same. `tests/test_compat_unit.py` fakes another version and checks each fallback.

Nothing outside this package may touch a private name of a library: ruff's SLF rules are on for the project, and
only this package is exempt (pyproject.toml). This package imports nothing from the project but the contract.
"""

import importlib.metadata
import logging
import sys

# The distributions the overrides were written against, at the versions requirements.lock pins.
WRITTEN_AGAINST = {
    "tfx": "1.16.0",
    "tfx-bsl": "1.16.1",
    "tensorflow-model-analysis": "0.47.1",
    "tensorflow-data-validation": "1.16.1",
    "ml-metadata": "1.16.0",
    "apache-beam": "2.59.0",
    "tensorflow": "2.16.2",
    "python": "3.10",
}


def _installed(distribution: str) -> str | None:
    if distribution == "python":
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# Read once, at import: what this process runs with.
INSTALLED = {name: _installed(name) for name in WRITTEN_AGAINST}
_warned: set[tuple[str, str]] = set()


def supported(override: str, *distributions: str) -> bool:
    """Whether every one of `distributions` is installed at the version `override` was written against. If not,
    logs once per override and distribution which one differs, and the caller takes the library's own path."""
    ok = True
    for name in distributions:
        want, have = WRITTEN_AGAINST[name], INSTALLED.get(name)
        if have == want:
            continue
        ok = False
        if (override, name) not in _warned:
            _warned.add((override, name))
            logging.getLogger(__name__).warning(
                "compat.%s was written against %s %s, and %s is installed: using the library's own path instead",
                override,
                name,
                want,
                have or "none",
            )
    return ok
