"""How the ULB spec's drift thresholds sit on real data: the divergences the DistributionValidator would measure.

For each file: the test split against the train split (newest 20% vs oldest 64% by Time), consecutive spans
(the file cut into K equal parts by Time), and the same file with V1..V4 shifted by one, two and three
standard deviations in its newest 36% of rows. The statistics are TFDV's (with the curated schema, as
StatisticsGen computes them) and the comparison is the DistributionValidator's own (its schema from the
config, tfdv.validate_statistics).

    .venv/bin/python bench/drift_thresholds.py [FILE ...] [--spans 4,5]

Default files: the embedded sample and ../shared/data/creditcard_past.csv.gz when present.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow_data_validation as tfdv  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tensorflow_metadata.proto.v0 import schema_pb2  # noqa: E402
from tfx.proto import distribution_validator_pb2  # noqa: E402

import contract  # noqa: E402
from datasets import spec as dataset_spec  # noqa: E402
from pipeline.scoring import skew  # noqa: E402

SCHEMA = text_format.Parse(Path(contract.SCHEMA_FILE).read_text(), schema_pb2.Schema())
CONFIG = text_format.Parse(
    dataset_spec.drift_config(contract.DEFAULT_DATASET), distribution_validator_pb2.DistributionValidatorConfig()
)
SHIFTED = ("V1", "V2", "V3", "V4")


def _statistics(frame: pd.DataFrame):
    return tfdv.generate_statistics_from_dataframe(frame, stats_options=tfdv.StatsOptions(schema=SCHEMA))


def measure(current: pd.DataFrame, baseline: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Feature -> (value, threshold), as the DistributionValidator measures current against baseline."""
    base = _statistics(baseline)
    schema = skew.comparators_schema(CONFIG, base, labelled=True)
    anomalies = tfdv.validate_statistics(_statistics(current), schema, previous_statistics=base)
    return {
        ".".join(i.path.step): (m.value, m.threshold) for i in anomalies.drift_skew_info for m in i.drift_measurements
    }


def _row(name: str, measured: dict) -> str:
    numeric = {f: v for f, v in measured.items() if f != contract.LABEL}
    top = sorted(numeric.items(), key=lambda kv: -kv[1][0])[:4]
    past = sorted(f for f, (v, t) in measured.items() if v > t)
    label = measured.get(contract.LABEL, (float("nan"), float("nan")))
    shown = ", ".join(f"{f} {v:.3f}" for f, (v, _) in top)
    return f"| {name} | {shown} | {label[0]:.4f} | {', '.join(past) or 'none'} |"


def _time_split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(frame)
    return frame.iloc[: int(0.64 * n)], frame.iloc[int(0.8 * n) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--spans", default="4,5", help="comma-separated span counts to cut each file into")
    args = parser.parse_args()
    files = args.files or [
        str(p)
        for p in (
            ROOT / "data" / "creditcard_sample.csv.gz",
            ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz",
        )
        if p.exists()
    ]
    print("| comparison | largest JSD (threshold 0.5) | label L-inf (threshold 0.15) | past threshold |")
    print("|---|---|---|---|")
    for path in files:
        name = Path(path).name.split(".")[0]
        frame = pd.read_csv(path).sort_values(contract.TIME, kind="stable").reset_index(drop=True)
        train, test = _time_split(frame)
        print(_row(f"{name}: test vs train", measure(test, train)), flush=True)
        for k in (int(x) for x in args.spans.split(",")):
            parts = np.array_split(frame, k)
            for i in range(1, k):
                print(_row(f"{name}: {k} spans, {i + 1} vs {i}", measure(parts[i], parts[i - 1])), flush=True)
        for sigmas in (1, 2, 3):
            shifted = frame.copy()
            first = int(0.64 * len(shifted))
            for feature in SHIFTED:
                column = shifted.columns.get_loc(feature)
                shifted.iloc[first:, column] += sigmas * shifted[feature].std()
            train, test = _time_split(shifted)
            label = f"{name}, V1..V4 +{sigmas} sd in newest 36%: test vs train"
            print(_row(label, measure(test, train)), flush=True)


if __name__ == "__main__":
    main()
