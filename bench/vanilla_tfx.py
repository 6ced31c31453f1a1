"""The vanilla TFX peer: the pipeline a TFX user would assemble from TFX's penguin and taxi examples, on the same
data, split and model as fraud-pipeline, with TFX's stock components and default settings.

CsvExampleGen (stock, the time split given as three input files: the oldest 64% of rows by Time, the next 16%, the
newest 20%, cut as bench/reference.py cuts them) -> StatisticsGen -> SchemaGen (inferred) -> ExampleValidator ->
Transform (stock, module file bench/vanilla_module.py) -> Trainer (stock, the transformed TFRecords through the
data accessor) -> a Resolver of the latest blessed model -> Evaluator (stock TFMA: PR-AUC, ROC-AUC, precision,
recall and the example count on the test split, a value gate on PR-AUC and a change gate against the baseline) ->
Pusher, on TFX's LocalDagRunner with no Beam arguments (the in-process direct runner), one process.

Usage: python bench/vanilla_tfx.py --data FILE --output DIR [--json OUT]
Runs into DIR (the same folder again is a retrain with a baseline); prints a JSON object with the pipeline's wall
seconds (without writing the split files), the seconds per component from ML Metadata, the test metrics and the
process's peak RSS.
"""

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

MODULE = str(Path(__file__).resolve().parent / "vanilla_module.py")
SPLITS = ("train", "eval", "test")


def write_splits(data: str, folder: Path) -> dict:
    """The file cut by Time into train/eval/test CSVs under folder; the rows and frauds per split."""
    frame = pd.read_csv(data)
    cut_eval, cut_test = np.quantile(frame["Time"], [0.64, 0.80])
    parts = {
        "train": frame[frame["Time"] < cut_eval],
        "eval": frame[(frame["Time"] >= cut_eval) & (frame["Time"] < cut_test)],
        "test": frame[frame["Time"] >= cut_test],
    }
    for name, part in parts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        part.to_csv(folder / name / "data.csv", index=False)
    return {name: {"rows": len(part), "frauds": int(part["Class"].sum())} for name, part in parts.items()}


def create_pipeline(splits_dir: Path, root: Path, counts: dict):
    import tensorflow_model_analysis as tfma
    from tfx import v1 as tfx

    example_gen = tfx.components.CsvExampleGen(
        input_base=str(splits_dir),
        input_config=tfx.proto.Input(splits=[tfx.proto.Input.Split(name=s, pattern=f"{s}/*") for s in SPLITS]),
    )
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"], module_file=MODULE
    )
    trainer = tfx.components.Trainer(
        module_file=MODULE,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"]),
        eval_args=tfx.proto.EvalArgs(splits=["eval"]),
        custom_config={"train_rows": counts["train"]["rows"], "train_frauds": counts["train"]["frauds"], "seed": 42},
    )
    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")
    eval_config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="Class", signature_name="serving_default")],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(class_name="ExampleCount"),
                    tfma.MetricConfig(
                        class_name="AUC",
                        config='{"curve": "PR", "name": "pr_auc"}',
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(lower_bound={"value": 0.5}),
                            change_threshold=tfma.GenericChangeThreshold(
                                direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -0.04}
                            ),
                        ),
                    ),
                    tfma.MetricConfig(class_name="AUC", config='{"name": "roc_auc"}'),
                    tfma.MetricConfig(class_name="Precision"),
                    tfma.MetricConfig(class_name="Recall"),
                ]
            )
        ],
    )
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=model_resolver.outputs["model"],
        eval_config=eval_config,
        example_splits=["test"],
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=str(root / "serving"))
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name="vanilla-fraud",
        pipeline_root=str(root / "tfx"),
        components=[
            example_gen,
            statistics_gen,
            schema_gen,
            example_validator,
            transform,
            trainer,
            model_resolver,
            evaluator,
            pusher,
        ],
        enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "metadata.sqlite")
        ),
    )


def component_seconds(metadata_path: str, since_ms: int) -> dict:
    """Seconds per component of the executions this run made (ML Metadata's create and last update times)."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    types = {t.id: t.name for t in store.get_execution_types()}
    seconds = {}
    for execution in store.get_executions():
        if execution.create_time_since_epoch < since_ms:
            continue
        node = execution.properties.get("component_id") or execution.custom_properties.get("component_id")
        name = node.string_value if node is not None else types.get(execution.type_id, "?").rsplit(".", 1)[-1]
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state)
        took = (execution.last_update_time_since_epoch - execution.create_time_since_epoch) / 1000
        seconds[name] = {"seconds": round(took, 1), "state": state}
    return seconds


def test_metrics(root: Path, since_ms: int) -> dict:
    import tensorflow_model_analysis as tfma

    evaluations = sorted((root / "tfx" / "Evaluator" / "evaluation").iterdir(), key=lambda p: int(p.name))
    result = tfma.load_eval_result(str(evaluations[-1]))
    metrics = {}
    for slice_key, by_output in result.slicing_metrics:
        if slice_key == ():
            values = by_output[""][""]
            metrics = {k: v.get("doubleValue") for k, v in values.items() if "doubleValue" in v}
    blessed = (root / "tfx" / "Evaluator" / "blessing").exists() and any(
        (p / "BLESSED").exists()
        for p in (root / "tfx" / "Evaluator" / "blessing").iterdir()
        if int(p.name) == int(evaluations[-1].name)
    )
    return {"metrics": metrics, "blessed": blessed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--json")
    args = parser.parse_args()
    root = Path(args.output).resolve()
    started, since_ms = time.monotonic(), int(time.time() * 1000)
    splits_dir = root / "data" / Path(args.data).name.split(".")[0]
    counts = write_splits(args.data, splits_dir)
    split_seconds = time.monotonic() - started

    from tfx import v1 as tfx

    run_started = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(create_pipeline(splits_dir, root, counts))
    result = {
        "counts": counts,
        # Not in "seconds": the time split written as files, which stock CsvExampleGen cannot cut itself.
        "write_splits_seconds": round(split_seconds, 1),
        "seconds": round(time.monotonic() - run_started, 1),
        "components": component_seconds(str(root / "metadata.sqlite"), since_ms),
        **test_metrics(root, since_ms),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
