"""Benchmark: `fraud-pipeline predict` (CSV in, CSV out) against the ceiling of the same model on in-memory data.

Usage: python bench/predict.py --model DIR [--data PATH] [--scale 4] [--repeat 3] [--output DIR] [--no-beam]
Default data: ../shared/data/creditcard_past.csv.gz (227,845 rows). The ceiling is the model's serving signature
called on the rows already serialized in memory, in the same batches: no reading, parsing or writing. predict runs
as the real command in a subprocess (its own rows/s excludes start-up; the wall time includes it), once on the file
and once on a file SCALE times longer, with the peak resident memory of each (os.wait4): streaming means the
memory should not grow with the file. Each predict runs twice: without recording (--no-record, the scores alone) and
as it runs by default, recording the batch with its TFDV statistics and serving skew, so the table shows what the
record costs (goal: at most 20% of the rows/s) and that its statistics keep memory flat too. On 2 cores one run's
rate varies by a third from run to run: each predict runs REPEAT times, alone and recorded taking turns, and the
table shows the run of median rate of each. The same job as a Beam pipeline with tfx_bsl's RunInference runs too,
to choose between the two routes by measurement.
"""

import argparse
import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CLI = Path(sys.executable).parent / "fraud-pipeline"
RATE = re.compile(r"scored ([\d,]+) rows in ([\d.]+) s")


def run_predict(data: str, model: str, to: Path, record: Path | None = None) -> dict:
    """One predict; with record, the batch is recorded under that output folder (statistics and skew)."""
    started = time.monotonic()
    recording = ["--output", str(record)] if record else ["--no-record"]
    proc = subprocess.Popen(
        [str(CLI), "predict", "--data", data, "--model", model, "--to", str(to), *recording],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"predict failed: {err[-2000:]}")
    rows, seconds = RATE.search(out).groups()
    rows = int(rows.replace(",", ""))
    return {
        "rows": rows,
        "seconds": float(seconds),
        "wall": time.monotonic() - started,
        "rate": rows / float(seconds),
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def median(runs: list[dict]) -> dict:
    """The run of median rate (the upper one of an even number)."""
    return sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]


def ceiling(data: str, model: str, batch_size: int = 8192) -> dict:
    """Rows per second of the serving signature alone, on rows serialized in memory beforehand."""
    import pandas as pd
    import tensorflow as tf

    from components.lib.csv_contract import FEATURES
    from pipeline.scoring import predict
    from pipeline.scoring.rows import ExampleEncoder

    values = pd.read_csv(data, usecols=list(FEATURES))[list(FEATURES)].to_numpy()
    serialized = ExampleEncoder().encode(values)
    loaded = predict.Model.load(Path(model))
    batches = [tf.constant(serialized[i : i + batch_size]) for i in range(0, len(serialized), batch_size)]
    started = time.monotonic()
    for batch in batches:
        loaded.serve(examples=batch)
    seconds = time.monotonic() - started
    return {"rows": len(serialized), "seconds": seconds, "rate": len(serialized) / seconds}


def run_inference(data: str, model: str, to: Path) -> dict:
    """The alternative to predict's loop: the same job as a Beam pipeline with tfx_bsl's RunInference (what TFX's
    BulkInferrer uses), on the direct runner: read the CSV, parse and encode the rows (the same numpy encoder, in
    batches), score with the model's serving signature, write Time, probability and decision as text. Beam does not
    keep the input order, and the bench does not check rows: it is the speed of the route, not a second command."""
    import apache_beam as beam
    import numpy as np
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401  (the PredictionLog outputs)
    from tfx_bsl.public.beam import run_inference
    from tfx_bsl.public.proto import model_spec_pb2

    from pipeline.scoring import predict
    from pipeline.scoring.rows import ExampleEncoder

    encoder = ExampleEncoder()
    threshold = float(predict.Model.load(Path(model)).threshold)
    spec = model_spec_pb2.InferenceSpecType(
        saved_model_spec=model_spec_pb2.SavedModelSpec(model_path=model, signature_name=["serving_default"])
    )

    def encode(lines):
        values = np.array([[float(v) for v in line.split(",")[:30]] for line in lines])
        return list(zip(values[:, 0].tolist(), encoder.encode(values), strict=True))

    def row(keyed):
        time, log = keyed
        outputs = log.predict_log.response.outputs
        probability = outputs["probability"].float_val[0]
        return f"{time:g},{probability:.9g},{int(probability >= threshold)}"

    started = time.monotonic()
    with beam.Pipeline(options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"])) as p:
        _ = (
            p
            | beam.io.ReadFromText(data, skip_header_lines=1)
            | beam.BatchElements(min_batch_size=1024, max_batch_size=8192)
            | beam.FlatMap(encode).with_output_types(tuple[float, bytes])
            | run_inference.RunInference(spec)
            | beam.Map(row)
            | beam.io.WriteToText(str(to), shard_name_template="")
        )
    seconds = time.monotonic() - started
    with open(to) as f:
        rows = sum(1 for _ in f)
    return {"rows": rows, "seconds": seconds, "rate": rows / seconds}


def scaled(data: str, times: int, path: Path) -> Path:
    """The data with its rows repeated times over, streamed (this process stays small; see main)."""
    with gzip.open(path, "wt", compresslevel=1) as out:
        for copy in range(times):
            with gzip.open(data, "rt") as src:
                header = src.readline()
                if copy == 0:
                    out.write(header)
                shutil.copyfileobj(src, out, 1 << 20)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a pushed model's folder (e.g. output/serving/NNN)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "creditcard_past.csv.gz"))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each predict; the median is shown")
    parser.add_argument("--output", default=str(ROOT / "bench" / "results" / "predict"))
    parser.add_argument("--no-beam", action="store_true", help="skip the Beam RunInference route")
    args = parser.parse_args()
    out = Path(args.output)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    # The predict runs first, while this process is small: Linux counts a child's memory before its exec (the
    # copy of this process that fork made) in the peak that wait4 reports, so a big parent would inflate it.
    big = scaled(args.data, args.scale, Path(tempfile.mkdtemp()) / f"x{args.scale}.csv.gz")
    runs: dict[str, list[dict]] = {"one": [], "many": [], "one_rec": [], "many_rec": []}
    for _ in range(args.repeat):
        runs["one"].append(run_predict(args.data, args.model, out / "scores.csv"))
        runs["one_rec"].append(run_predict(args.data, args.model, out / "scores_rec.csv", out / "recorded"))
        runs["many"].append(run_predict(str(big), args.model, out / f"scores_x{args.scale}.csv"))
        recorded = run_predict(str(big), args.model, out / f"scores_rec_x{args.scale}.csv", out / "recorded")
        runs["many_rec"].append(recorded)
    one, many, one_rec, many_rec = (median(runs[name]) for name in ("one", "many", "one_rec", "many_rec"))
    beam_run = None if args.no_beam else run_inference(args.data, args.model, out / "scores_runinference.csv")
    top = ceiling(args.data, args.model)
    print(f"| measure | predict 1x | predict {args.scale}x | ceiling (model on in-memory rows) |")
    print("|---|---|---|---|")
    print(f"| rows | {one['rows']:,} | {many['rows']:,} | {top['rows']:,} |")
    print(f"| rows/s | {one['rate']:,.0f} | {many['rate']:,.0f} | {top['rate']:,.0f} |")
    print(f"| predict / ceiling | {one['rate'] / top['rate']:.2f} | {many['rate'] / top['rate']:.2f} | 1.00 |")
    print(
        f"| seconds scoring (wall with start-up) | {one['seconds']:.1f} ({one['wall']:.1f}) | "
        f"{many['seconds']:.1f} ({many['wall']:.1f}) | {top['seconds']:.1f} |"
    )
    print(f"| peak RSS MB | {one['peak_rss_mb']:.0f} | {many['peak_rss_mb']:.0f} | |")
    print()
    print(f"| recording the batch (statistics, skew), median of {args.repeat} | 1x | {args.scale}x |")
    print("|---|---|---|")
    print(f"| rows/s, scores alone (--no-record) | {one['rate']:,.0f} | {many['rate']:,.0f} |")
    print(f"| rows/s, recorded (the default) | {one_rec['rate']:,.0f} | {many_rec['rate']:,.0f} |")
    cost_one, cost_many = one["rate"] / one_rec["rate"] - 1, many["rate"] / many_rec["rate"] - 1
    print(f"| cost of the record (time per row) | {cost_one:+.0%} | {cost_many:+.0%} |")
    spread = {name: ", ".join(f"{r['rate']:,.0f}" for r in found) for name, found in runs.items()}
    print(f"| every run's rows/s, alone | {spread['one']} | {spread['many']} |")
    print(f"| every run's rows/s, recorded | {spread['one_rec']} | {spread['many_rec']} |")
    print(f"| wall s (with start-up), alone / recorded | {one['wall']:.1f} / {one_rec['wall']:.1f} | "
          f"{many['wall']:.1f} / {many_rec['wall']:.1f} |")  # fmt: skip
    print(f"| peak RSS MB, alone / recorded | {one['peak_rss_mb']:.0f} / {one_rec['peak_rss_mb']:.0f} | "
          f"{many['peak_rss_mb']:.0f} / {many_rec['peak_rss_mb']:.0f} |")  # fmt: skip
    print()
    print("| route, 1x | rows | seconds | rows/s | / ceiling |")
    print("|---|---|---|---|---|")
    routes = [("predict (streaming loop)", one)] + (
        [("Beam RunInference, direct runner", beam_run)] if beam_run else []
    )
    for name, r in routes:
        print(f"| {name} | {r['rows']:,} | {r['seconds']:.1f} | {r['rate']:,.0f} | {r['rate'] / top['rate']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
