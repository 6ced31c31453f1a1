"""Benchmark: how fast and with how much memory `run` and `predict` refuse bad or hostile files, against another
checkout of the project (the code before a change) in the same invocation.

    python bench/hostile.py --before DIR [--model DIR] [--gigabyte] [--timeout 200]

Each case is a file written into a temporary folder; each command runs as a subprocess of this venv's Python
(`python -m pipeline.cli`) with the checkout under test as its working directory (so its modules are the ones
imported), once for this checkout and once for --before. Printed per case and checkout: the exit code (or
'killed' past --timeout, 'signal N' for a crash), the wall time and the peak resident memory (os.wait4).
--gigabyte adds a 1 GB plain file of valid rows to `predict` (memory must stay flat as it does for 120 MB).
"""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "creditcard_sample.csv.gz"


def _lines() -> tuple[str, list[str]]:
    with gzip.open(SAMPLE, "rt") as f:
        header = f.readline()
        return header, f.readlines()


def cases(folder: Path, gigabyte: bool, make: bool = True) -> dict[str, Path]:
    """name -> the file of that case (written when `make`; the parent only names them)."""
    header, rows = _lines()
    text = (header + "".join(rows)).encode()
    makers = {
        "empty.csv": lambda: b"",
        "header-only.csv": lambda: header.encode(),
        "truncated.csv.gz": lambda: gzip.compress(text, compresslevel=1)[: len(text) // 8],
        "missing-V3.csv": lambda: "".join(
            ",".join(c for i, c in enumerate(r.split(",")) if i != 3) for r in [header, *rows]
        ).encode(),
        "300k-commas.csv": lambda: (header + "".join(rows[:2000]) + "," * 300_000 + "\n").encode(),
        "100mb-line.csv.gz": lambda: gzip.compress((header + rows[0]).encode() + b"1" * (100 << 20) + b"\n", 9),
        **{f"header-bomb-{mb}mb.csv.gz": (lambda mb=mb: gzip.compress(b"A" * (mb << 20), 9)) for mb in (50, 200, 800)},
    }
    made = {name: folder / name for name in makers}
    if make:
        for name, maker in makers.items():
            made[name].write_bytes(maker())
    if gigabyte:
        made["valid-1gb.csv"] = folder / "valid-1gb.csv"
        if make:
            with open(made["valid-1gb.csv"], "w") as f:
                f.write(header)
                body = "".join(rows)
                while f.tell() < 1 << 30:
                    f.write(body)
    return made


def measure(argv: list[str], cwd: Path, timeout: float) -> tuple[str, float, int]:
    """(exit, seconds, peak RSS in MB) of one command."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "TF_CPP_MIN_LOG_LEVEL": "3"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            os.killpg(proc.pid, 9)
            killed = True
        time.sleep(0.05)
    seconds = time.monotonic() - started
    if killed:
        code = "killed"
    elif os.WIFSIGNALED(status):
        code = f"signal {os.WTERMSIG(status)}"
    else:
        code = str(os.WEXITSTATUS(status))
    return code, seconds, usage.ru_maxrss // 1024


def main() -> int:
    if sys.argv[1:2] == ["--make-cases-into"]:
        cases(Path(sys.argv[2]), "--gigabyte" in sys.argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="a checkout of the code before (git worktree add DIR REV)")
    parser.add_argument("--model", help="a pushed model for predict (default: the newest under output/serving)")
    parser.add_argument("--gigabyte", action="store_true")
    parser.add_argument("--timeout", type=float, default=200)
    args = parser.parse_args()
    model = args.model or max((ROOT / "output" / "serving").glob("[0-9]*"), key=lambda p: int(p.name))
    folder = Path(tempfile.mkdtemp(prefix="fraud-hostile-"))
    # The files are made by a child process: a child's peak memory (ru_maxrss) counts its parent's resident memory
    # at the fork, and making an 800 MB bomb would put that into every measurement (this process stays small).
    subprocess.run([sys.executable, __file__, "--make-cases-into", str(folder), *(["--gigabyte"] * args.gigabyte)],
                   check=True)  # fmt: skip
    files = cases(folder, args.gigabyte, make=False)
    trees = {"before": Path(args.before).resolve(), "after": ROOT}
    print(f"{'case':<24} {'command':<8} " + " ".join(f"{t + ' exit':>12} {'s':>6} {'MB':>6}" for t in trees))
    for name, path in files.items():
        commands = {
            "run": ["run", "--data", str(path), "--no-report"],
            "predict": ["predict", "--data", str(path), "--model", str(model), "--no-record"],
        }
        if name.startswith("valid"):
            commands.pop("run")
        for command, argv in commands.items():
            cells = []
            for tree_name, tree in trees.items():
                out = folder / f"out-{tree_name}-{name}-{command}"
                extra = ["--output", str(out)] if command == "run" else ["--to", str(folder / f"{tree_name}.csv")]
                code, seconds, rss = measure(argv + extra, tree, args.timeout)
                cells.append(f"{code:>12} {seconds:6.1f} {rss:6}")
            print(f"{name:<24} {command:<8} " + " ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
