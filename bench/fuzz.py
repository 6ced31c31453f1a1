"""Fuzzes the CSV contract's readers for a fixed time and prints what ran and what it found (`make bench-fuzz`).

    python bench/fuzz.py [--seconds 300] [--corpus DIR]

Runs tests/fuzz/csv_contract.py (atheris) on the seeds and a corpus kept between runs (default: a folder under
~/.cache, outside the repo), restarting it after a crash of the process until the time is up. Prints the executions,
the rate, the distinct Python findings (exceptions other than DataRejectedError, by where they were raised) and the
crashes of the process (libFuzzer's crash-/oom-/timeout- files), each with the file that reproduces it. Every finding
belongs in tests/fuzz/regressions/.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "fuzz" / "seeds"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--corpus", default=str(Path.home() / ".cache" / "fraud-pipeline" / "fuzz-corpus"))
    args = parser.parse_args()
    corpus = Path(args.corpus)
    corpus.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fraud-fuzz-bench-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FUZZ_FINDINGS": str(work / "findings")}
    started, runs, starts = time.monotonic(), 0, 0
    while (left := args.seconds - (time.monotonic() - started)) > 15:
        starts += 1
        done = subprocess.run(
            [sys.executable, "-m", "tests.fuzz.csv_contract", f"-max_total_time={int(left)}", "-max_len=4096",
             "-rss_limit_mb=4096", f"-artifact_prefix={work}/", str(corpus), str(SEEDS)],
            env=env, capture_output=True, text=True, cwd=work,
        )  # fmt: skip
        (work / f"start-{starts}.log").write_text(done.stderr)
        for line in done.stderr.splitlines():
            if "ERROR: libFuzzer" in line or "DEADLY SIGNAL" in line or "Uncaught Python exception" in line:
                print(f"start {starts}: {line.strip()} (log: {work}/start-{starts}.log)", flush=True)
        counted = re.findall(r"^#(\d+)\s", done.stderr, re.M)
        finished = re.search(r"^fuzzing done: (\d+) inputs", done.stderr, re.M)
        runs += int(finished.group(1)) if finished else (int(counted[-1]) if counted else 0)
        if done.returncode == 0:
            break
    seconds = time.monotonic() - started
    findings = sorted((work / "findings").glob("finding-*"))
    crashes = sorted(p for p in work.iterdir() if p.name.startswith(("crash-", "oom-", "timeout-", "leak-")))
    print(f"{'seconds':>8} {'executions':>11} {'exec/s':>7} {'starts':>6} {'findings':>8} {'crashes':>7}")
    print(f"{seconds:8.0f} {runs:11,} {runs / seconds:7.0f} {starts:6} {len(findings):8} {len(crashes):7}")
    for path in findings + crashes:
        print(f"  {path}")
    print(f"corpus: {corpus} ({len(list(corpus.iterdir()))} inputs)")
    return 1 if findings or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
