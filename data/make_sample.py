"""Draws the committed sample (data/) and the test fixture (tests/fixtures/) from the full CSV.

Usage: python data/make_sample.py [SOURCE]   (default: ../shared/data/creditcard_past.csv.gz)

Rows are copied verbatim, in their original (time) order. Every fraud is kept and
a seeded random share of the normal rows, so the later gates see enough positives.
"""

import argparse
import gzip
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABEL = "Class"


def _is_fraud(line, header):
    label_at = header.strip().split(",").index(LABEL)
    return line.strip().split(",")[label_at].strip('"') == "1"


def _draw(lines, header, normal_share, fraud_share, seed):
    rng = random.Random(seed)
    return [line for line in lines if rng.random() < (fraud_share if _is_fraud(line, header) else normal_share)]


def _write(path, header, lines):
    data = (header + "".join(lines)).encode()
    if path.suffix == ".gz":
        # mtime=0 keeps the gzip bytes reproducible.
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    frauds = sum(_is_fraud(line, header) for line in lines)
    print(f"{path.relative_to(ROOT)}: {len(lines)} rows, {frauds} frauds")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(ROOT.parent / "shared/data/creditcard_past.csv.gz"))
    args = parser.parse_args()
    with gzip.open(args.source, "rt") as f:
        header = f.readline()
        lines = f.readlines()
    sample = _draw(lines, header, normal_share=0.05, fraud_share=1.0, seed=20261123)
    _write(ROOT / "data/creditcard_sample.csv.gz", header, sample)
    fixture = _draw(sample, header, normal_share=0.07, fraud_share=0.35, seed=7)
    _write(ROOT / "tests/fixtures/creditcard_fixture.csv.gz", header, fixture)


if __name__ == "__main__":
    main()
