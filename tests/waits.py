"""Every wait of the suite against its timeout: how much of the timeout it used.

A timeout is a bet on how slow a busy day can be; a wait that uses most of its timeout alone fails on the day the
machine is shared. conftest installs `install` in every pytest process: each subprocess wait given a timeout
(Popen.wait and Popen.communicate, which subprocess.run calls) appends one JSON line to the session's file (the
environment variable WAITS names it): where the timeout is set (the innermost frame in tests/), the timeout, the
seconds the wait took, and whether it expired. A polling loop with a deadline reports through `waited`. At the end
of the session `summary` gives each place's longest wait against its timeout, the closest to their timeout first,
and conftest prints it (docs/testing.md, "Timeouts").
"""

import json
import os
import subprocess
import threading
import time
import traceback

WAITS = "FRAUD_PIPELINE_TEST_WAITS"
# Where a timeout counts as too tight: a wait that used more than this share of it.
TIGHT = 0.5

_TESTS = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_TESTS)
_inside = threading.local()


def _site() -> str:
    """The innermost frame in tests/ (not this module): where the wait and its timeout are written."""
    for frame in reversed(traceback.extract_stack()):
        name = os.path.abspath(frame.filename)
        if name.startswith(_TESTS + os.sep) and name != os.path.abspath(__file__):
            return f"{os.path.relpath(name, _ROOT)}:{frame.lineno}"
    return "?"


def waited(timeout: float, seconds: float, expired: bool = False, site: str | None = None) -> None:
    """Records one wait of `seconds` against `timeout` (a polling loop's deadline, or a subprocess's)."""
    path = os.environ.get(WAITS)
    if not path or timeout is None:
        return
    line = json.dumps({"site": site or _site(), "timeout": float(timeout), "seconds": seconds, "expired": expired})
    with open(path, "a") as f:  # one short line a write: whole lines from concurrent workers
        f.write(line + "\n")


def _timed(original, timeout_position: int):
    def wait(self, *args, **kwargs):
        timeout = kwargs.get("timeout", args[timeout_position] if len(args) > timeout_position else None)
        if timeout is None or getattr(_inside, "active", False):
            return original(self, *args, **kwargs)
        _inside.active = True
        started = time.monotonic()
        try:
            result = original(self, *args, **kwargs)
        except subprocess.TimeoutExpired:
            waited(timeout, time.monotonic() - started, expired=True)
            raise
        finally:
            _inside.active = False
        waited(timeout, time.monotonic() - started)
        return result

    wait._recorded = True
    return wait


def install() -> None:
    """Records every subprocess wait with a timeout from here on (once a process)."""
    if getattr(subprocess.Popen.wait, "_recorded", False):
        return
    subprocess.Popen.wait = _timed(subprocess.Popen.wait, 0)  # wait(self, timeout=None)
    subprocess.Popen.communicate = _timed(
        subprocess.Popen.communicate, 1
    )  # communicate(self, input=None, timeout=None)


def summary(path: str) -> list[dict]:
    """Each place's longest wait, with its timeout and how many waits it had, the largest share of its timeout
    first."""
    places: dict[str, dict] = {}
    try:
        lines = open(path).read().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            wait = json.loads(line)
        except ValueError:  # a line torn by a killed worker
            continue
        place = places.setdefault(wait["site"], {"site": wait["site"], "waits": 0, "seconds": -1.0})
        place["waits"] += 1
        place["expired"] = place.get("expired", False) or wait["expired"]
        if wait["seconds"] / wait["timeout"] > place["seconds"] / place.get("timeout", 1.0):
            place.update(seconds=wait["seconds"], timeout=wait["timeout"])
    return sorted(places.values(), key=lambda p: -p["seconds"] / p["timeout"])


def lines(places: list[dict], top: int = 12) -> list[str]:
    """The summary as the terminal shows it."""
    if not places:
        return []
    tight = [p for p in places if p["seconds"] > TIGHT * p["timeout"]]
    out = [
        f"{len(places)} places in tests/ wait with a timeout; {len(tight)} used more than {TIGHT:.0%} of it"
        + (f": {', '.join(p['site'] for p in tight)}" if tight else ""),
        "the closest to their timeout (longest wait / timeout, waits):",
    ]
    for p in places[:top]:
        flag = " EXPIRED" if p["expired"] else ""
        out.append(f"  {p['site']}: {p['seconds']:.1f} s / {p['timeout']:.0f} s ({p['waits']}){flag}")
    return out
