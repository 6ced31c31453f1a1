"""Through Transform and Trainer on the fixture: the three strategies, and the exported SavedModel's signatures."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

import contract
from pipeline.definition import config as cfg
from pipeline.results.metadata import run_nodes
from tests.support import ALL_COMPONENTS, UPSTREAM_OF_TRAINING, raw_examples, trainer_rows, verdict_exit
from trainer import model as model_lib
from trainer import task

pytestmark = pytest.mark.e2e


def _without_label(serialized):
    example = tf.train.Example.FromString(serialized)
    del example.features.feature[contract.LABEL]
    return example.SerializeToString()


def _check_trainer_summary(summary, strategy):
    trainer = summary["trainer"]
    assert trainer["hparams"]["strategy"] == strategy == summary["hparams"]["strategy"]
    train = summary["splits"]["train"]
    assert (trainer["train_rows"], trainer["train_frauds"]) == (train["rows"], train["frauds"])
    pos, neg = train["frauds"], train["rows"] - train["frauds"]
    if strategy == "oversample":
        assert trainer["initial_bias"] == 0.0
        assert trainer["steps_per_epoch"] == math.ceil(2 * neg / trainer["hparams"]["batch_size"])
    else:
        assert trainer["initial_bias"] == pytest.approx(math.log(pos / neg))
    if strategy == "class_weight":
        assert trainer["class_weight"] == {
            "0": pytest.approx(train["rows"] / (2 * neg)),
            "1": pytest.approx(train["rows"] / (2 * pos)),
        }
    else:
        assert trainer["class_weight"] is None
    assert 1 <= trainer["best_epoch"] <= trainer["epochs_run"] <= trainer["hparams"]["max_epochs"]
    assert 0.0 < trainer["best_val_prc"] <= 1.0
    assert os.path.isfile(trainer["history_path"])


def test_default_strategy_is_baseline(time_run):
    _check_trainer_summary(time_run.summary, "baseline")


@pytest.mark.parametrize(("step", "strategy"), [("first", "class_weight"), ("oversample", "oversample")])
def test_other_strategies_train_end_to_end(step, strategy, lifecycle):
    run = lifecycle[step]
    assert run.returncode == verdict_exit(run), run.stderr[-3000:]
    _check_trainer_summary(run.summary, strategy)
    states = {node: c["state"] for node, c in run.summary["components"].items()}
    assert set(states) == ALL_COMPONENTS
    if step == "oversample":
        # Only the Trainer's hyperparameters changed since the runs before: Trainer and what follows re-run.
        assert {n for n, s in states.items() if s == "CACHED"} == UPSTREAM_OF_TRAINING | {"Transform"}
        assert states["Trainer"] == states["Evaluator"] == states["Pusher"] == "COMPLETE"


def test_the_trainer_reads_the_rows_tfx_data_accessor_reads_to_the_bit(time_run):
    """trainer.task.raw_batches reads ExampleGen's TFRecord files itself, without the data accessor (given none
    here); the rows through the Transform graph are those of TFX's data accessor, byte for byte."""
    for split in ("train", "eval"):
        ours, ours_y = trainer_rows(time_run.summary, split)
        theirs, theirs_y = trainer_rows(time_run.summary, split, through_accessor=True)
        assert len(ours) == time_run.summary["splits"][split]["rows"]
        assert ours.tobytes() == theirs.tobytes() and ours_y.tobytes() == theirs_y.tobytes(), split
    pattern = os.path.join(time_run.summary["artifacts"]["examples"], contract.split_dir("eval"), "*")
    graph = tft.TFTransformOutput(time_run.summary["artifacts"]["transform_graph"])
    rows = sum(len(batch[contract.LABEL]) for batch in task.raw_batches(pattern, None, graph))
    assert rows == time_run.summary["splits"]["eval"]["rows"]


def test_history_is_kept_with_the_model(time_run):
    with open(time_run.summary["trainer"]["history_path"]) as f:
        facts = json.load(f)
    epochs = time_run.summary["trainer"]["epochs_run"]
    for metric in ("loss", "tp", "fp", "tn", "fn", "precision", "recall", "auc", "prc"):
        assert len(facts["history"][metric]) == epochs
        assert len(facts["history"]["val_" + metric]) == epochs


def test_saved_model_round_trip(time_run):
    model_dir = os.path.join(time_run.summary["trainer"]["model_uri"], contract.SERVING_MODEL_DIR)
    nodes = run_nodes(time_run.metadata_path, cfg.DEFAULT_PIPELINE_NAME, time_run.summary["run_id"])
    tf_transform_output = tft.TFTransformOutput(nodes["Transform"].output_uri("transform_graph"))
    raw = raw_examples(time_run, "test")

    loaded = tf.saved_model.load(model_dir)
    serve = loaded.signatures[contract.SERVING_SIGNATURE]
    served = serve(**{contract.SERVING_INPUT: tf.constant([_without_label(r) for r in raw])})
    probabilities = served[contract.PROBABILITY_OUTPUT].numpy().ravel()

    # The same examples transformed separately, then fed to the Keras model.
    parsed = tf.io.parse_example(tf.constant(raw), tf_transform_output.raw_feature_spec())
    transformed = tf_transform_output.transform_raw_features(parsed)
    model = keras.models.load_model(model_dir)
    expected = model(model_lib.stacked(transformed)).numpy().ravel()

    assert len(probabilities) == len(raw)
    assert np.all((probabilities > 0) & (probabilities < 1))
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)

    transformed_features = loaded.signatures[contract.TRANSFORMED_FEATURES_SIGNATURE]
    slices = transformed_features(**{contract.SERVING_INPUT: tf.constant(raw[:5])})
    assert set(contract.SLICE_FEATURES) <= set(slices)
    assert {v.decode() for v in slices[contract.AMOUNT_BUCKET].numpy().ravel()} <= set(contract.AMOUNT_LABELS)


@pytest.mark.parametrize("fault", ["missing", "text"])
def test_the_serving_signature_names_the_feature_of_a_bad_request(time_run, fault):
    model_dir = os.path.join(time_run.summary["trainer"]["model_uri"], contract.SERVING_MODEL_DIR)
    serve = tf.saved_model.load(model_dir).signatures[contract.SERVING_SIGNATURE]
    example = tf.train.Example.FromString(_without_label(raw_examples(time_run, "test")[0]))
    if fault == "missing":
        del example.features.feature["V3"]
    else:
        example.features.feature["V3"].Clear()
        example.features.feature["V3"].bytes_list.value.append(b"abc")
    with pytest.raises(tf.errors.InvalidArgumentError, match="V3"):
        serve(**{contract.SERVING_INPUT: tf.constant([example.SerializeToString()])})
