"""Reads every regression and seed input of the fuzzer back, in one process: `python -m tests.fuzz.replay FILE...`.

Prints one line per input (`ok refused` or `ok read`) and exits 0; an input that raises anything but the contract's
DataRejectedError exits 1 with its traceback, and one that crashes the process (Arrow's reader, before the guards)
ends it with a signal: tests/test_fuzz_unit.py runs it in a subprocess so that a crash fails the test, not the suite.
"""

import sys

from tests.fuzz import inputs


def main(paths: list[str]) -> int:
    for path in paths:
        with open(path, "rb") as f:
            refused = inputs.exercise(f.read())
        print(f"ok {'refused' if refused else 'read'} {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
