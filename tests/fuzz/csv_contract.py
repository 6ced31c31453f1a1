"""A coverage-guided fuzzer (atheris, libFuzzer's engine) of the CSV contract's readers and of what --data means.

    python -m tests.fuzz.csv_contract [-runs=N | -max_total_time=S] [CORPUS_DIR ...]   (libFuzzer's flags)

Each input is turned into a file (tests/fuzz/inputs.py: plain or gzip, bytes repeated so a short input can make a
line of megabytes, a name of the input's choosing) and read by everything that reads a file a user gives: the
training checks (check_training_files), CsvExampleGen's fast reader (Arrow) and careful reader, predict's reader
(fast, then careful with rejects), and `--data`'s file-name handling. A DataRejectedError is the contract working;
any other exception is a finding: it is written to FINDINGS_DIR (one file per distinct place it was raised, with the
input that raised it) and the fuzzing goes on. A crash of the process (Arrow's reader killed it before the guards)
ends the run, and libFuzzer writes the input as crash-<sha1>. Every finding becomes a file in
tests/fuzz/regressions/, which tests/test_fuzz_unit.py reads back on every run of the suite.
"""

import ctypes
import faulthandler
import json
import os
import sys
import time
import traceback

import atheris

with atheris.instrument_imports():
    from tests.fuzz import inputs
# CsvExampleGen's reader brings TensorFlow and tfx_bsl: imported once here, outside the instrumentation (the
# project's modules it shares with the others are instrumented already).
from components.example_gen import records  # noqa: E402, F401

FINDINGS_DIR = os.environ.get("FUZZ_FINDINGS", "fuzz-findings")
# Seconds after which a run dumps every thread's stack and exits (unset: never).
HANG_SECONDS_ENV = "FUZZ_HANG_SECONDS"
STATS_FILE = os.path.join(FINDINGS_DIR, "stats.json")
# glibc keeps the memory of the inputs' large transient buffers (files of megabytes from a few bytes) and the process
# grows until libFuzzer's limit stops it: giving it back every TRIM_EVERY inputs keeps the resident memory flat
# (docs/benchmarks.md, "Fuzzing").
TRIM_EVERY = 200
_libc = ctypes.CDLL("libc.so.6")
_state = {
    "runs": 0,
    "rejected": 0,
    "findings": {},
    "started": time.monotonic(),
    "written": 0.0,
    "limit_runs": 0,
    "limit_seconds": 0.0,
}


def _signature(error: BaseException) -> str:
    """Where an exception was raised, in the project's code if it passed through it: distinct findings, not inputs."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "/site-packages/" not in f.filename]
    where = frames[-1] if frames else traceback.extract_tb(error.__traceback__)[-1]
    return f"{type(error).__name__} at {os.path.basename(where.filename)}:{where.lineno}"


def _write_stats(force: bool = False) -> None:
    now = time.monotonic()
    if not force and now - _state["written"] < 1.0:
        return
    _state["written"] = now
    stats = {
        "runs": _state["runs"],
        "rejected_as_data": _state["rejected"],
        "seconds": round(now - _state["started"], 1),
        "findings": sorted(_state["findings"]),
    }
    with open(STATS_FILE + ".tmp", "w") as f:
        json.dump(stats, f, indent=1)
    os.replace(STATS_FILE + ".tmp", STATS_FILE)


def _limits(argv: list[str]) -> tuple[list[str], int, float]:
    """(libFuzzer's arguments without -runs and -max_total_time, the runs, the seconds): this harness stops the
    fuzzing itself. libFuzzer ends a run with C's exit() while this interpreter holds the GIL, and Arrow's thread
    pool, whose destructor then runs, can be waiting on a worker that is releasing a Python buffer and needs the GIL:
    the process hangs at its end (py-spy showed both threads there). os._exit() skips the destructors."""
    runs, seconds, kept = 0, 0.0, []
    for arg in argv:
        if arg.startswith("-runs="):
            runs = int(arg.split("=", 1)[1])
        elif arg.startswith("-max_total_time="):
            seconds = float(arg.split("=", 1)[1])
        else:
            kept.append(arg)
    return kept, runs, seconds


def _done_if_over() -> None:
    over_runs = _state["limit_runs"] and _state["runs"] >= _state["limit_runs"]
    over_time = _state["limit_seconds"] and time.monotonic() - _state["started"] >= _state["limit_seconds"]
    if over_runs or over_time:
        _write_stats(force=True)
        seconds = time.monotonic() - _state["started"]
        print(f"\nfuzzing done: {_state['runs']} inputs in {seconds:.0f} s", file=sys.stderr, flush=True)
        os._exit(0)


def test_one_input(data: bytes) -> None:
    _state["runs"] += 1
    if _state["runs"] % TRIM_EVERY == 0:
        _libc.malloc_trim(0)
    try:
        if inputs.exercise(data):
            _state["rejected"] += 1
    except Exception as e:  # noqa: BLE001 - anything but DataRejectedError is what the fuzzer looks for.
        signature = _signature(e)
        if signature not in _state["findings"]:
            _state["findings"][signature] = data
            name = signature.replace(" ", "_").replace(":", "_")
            with open(os.path.join(FINDINGS_DIR, f"finding-{name}.bin"), "wb") as f:
                f.write(data)
            print(f"\nFINDING {signature}\n{traceback.format_exc()}", file=sys.stderr, flush=True)
    _write_stats()
    _done_if_over()


def main() -> None:
    os.makedirs(FINDINGS_DIR, exist_ok=True)
    hang = float(os.environ.get(HANG_SECONDS_ENV, "0"))
    if hang:
        # A run still going after this long is stuck: every thread's stack goes to stderr and the process exits, so
        # whoever started it reads where it hung.
        faulthandler.dump_traceback_later(hang, exit=True)
    argv, _state["limit_runs"], _state["limit_seconds"] = _limits(sys.argv)
    atheris.Setup(argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        _write_stats(force=True)


if __name__ == "__main__":
    main()
