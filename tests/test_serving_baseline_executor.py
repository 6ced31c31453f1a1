"""The serving folder, ServingBaseline's and the Pusher's executors, on small artifacts made here (no pipeline run).

The baseline is the newest complete version that is not the candidate's own model; the Pusher records each
version's lineage and does not push a model that is already the one serving.
"""

import json
import os
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

import contract
from components.lib import serving
from components.pusher import component as pusher
from components.serving_baseline.component import FOUND, SERVING_VERSION, ServingBaseline
from datasets import spec as dataset_spec

CONFIG = json.dumps({"hparams": {"units": 16}})


def _version(serving_dir, version: int, identity: str | None = None, complete: bool = True) -> str:
    folder = os.path.join(serving_dir, str(version))
    os.makedirs(os.path.join(folder, "variables"))
    if complete:
        open(os.path.join(folder, "saved_model.pb"), "wb").write(b"model")
        open(os.path.join(folder, "variables", "variables.index"), "wb").write(b"index")
    if identity is not None:
        os.makedirs(os.path.join(folder, "assets.extra"))
        json.dump({"identity": identity}, open(os.path.join(folder, contract.LINEAGE), "w"))
    serving.write_manifest(folder)  # as the Pusher writes it
    return folder


def _examples(tmp_path, data: str = "abc") -> standard_artifacts.Examples:
    """An Examples artifact as CsvExampleGen leaves it: a fingerprint, and an eval split of raw tf.Examples."""
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = json.dumps(["train", "eval", "test"])
    examples.set_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY, data)
    examples.set_string_custom_property(contract.DATA_FILES_PROPERTY, json.dumps(["a.csv"]))
    split = tmp_path / "examples" / contract.split_dir("eval")
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as writer:
        for i in range(3):
            feature = {n: tf.train.Feature(float_list=tf.train.FloatList(value=[i])) for n in contract.RAW_COLUMNS}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return examples


def test_only_complete_versions_serve(tmp_path):
    root = str(tmp_path / "serving")
    _version(root, 5)
    _version(root, 7, complete=False)  # a copy still in progress
    os.makedirs(os.path.join(root, ".staging-x"))
    assert serving.versions(root) == [5, 7]
    assert serving.complete_versions(root) == [5]
    assert serving.serving_now(root) == (5, os.path.join(root, "5"))


def test_the_baseline_is_the_newest_version_that_is_not_the_candidate(tmp_path):
    root = str(tmp_path / "serving")
    assert serving.choose_baseline(root, "me") is None
    _version(root, 1, identity="other")
    _version(root, 2, identity="me")
    _version(root, 3, identity="me", complete=False)
    assert serving.choose_baseline(root, "me") == (1, os.path.join(root, "1"))
    assert serving.choose_baseline(root, "new") == (2, os.path.join(root, "2"))
    # A version pushed without lineage counts as another model.
    _version(root, 4)
    assert serving.choose_baseline(root, "me")[0] == 4


def test_the_baseline_key_changes_exactly_when_the_choice_does(tmp_path):
    root = str(tmp_path / "serving")
    before = serving.baseline_key(root, "me")
    _version(root, 1, identity="me")
    # The only version is the candidate's own model: the choice is still none, so the cache stays valid.
    assert serving.baseline_key(root, "me") == before == "none"
    _version(root, 2, identity="other")
    assert serving.baseline_key(root, "me") == "version:2=other"
    # Without an identity every complete version counts.
    assert serving.baseline_key(root, None) == "versions:1=me,2=other"


def test_the_data_fingerprint_is_of_names_and_contents(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "x.csv").write_text("1,2\n")
    same = serving.data_fingerprint([str(tmp_path / "a" / "x.csv")], str(tmp_path / "a"))
    assert same == serving.data_fingerprint([str(tmp_path / "b" / "x.csv")], str(tmp_path / "b"))
    (tmp_path / "b" / "x.csv").write_text("1,3\n")
    assert same != serving.data_fingerprint([str(tmp_path / "b" / "x.csv")], str(tmp_path / "b"))


def _run_baseline(tmp_path, root, examples, name="baseline", dataset=""):
    baseline = standard_artifacts.Model()
    baseline.uri = str(tmp_path / name)
    executor = ServingBaseline.EXECUTOR_SPEC.executor_class()
    executor.Do(
        {"examples": [examples]},
        {"baseline": [baseline]},
        {"serving_dir": root, "training_config": CONFIG, "baseline_key": "", "dataset": dataset},
    )
    return baseline


def test_a_serving_model_of_another_dataset_is_no_baseline_and_the_record_says_why(tmp_path):
    """The serving version's own spec (in the version) reads columns this run's examples lack: no baseline."""
    root = str(tmp_path / "serving")
    folder = _version(root, 1, identity="older model")
    simulated = dataset_spec.load(os.path.join(dataset_spec.DATASETS_DIR, "simulated", "dataset.yaml"))
    Path(folder, contract.DATASET_SPEC).write_text(simulated.to_json())
    serving.write_manifest(folder)
    ulb_run = _run_baseline(tmp_path, root, _examples(tmp_path), "ulb")
    assert ulb_run.get_int_custom_property(FOUND) == 0
    record = json.loads(Path(ulb_run.uri, "baseline.json").read_text())
    assert record["incomparable"]["version"] == "1" and "tx_datetime" in record["incomparable"]["columns"]
    # The same version is the baseline of a run of its own dataset.
    sim_run = _run_baseline(tmp_path, root, _examples(tmp_path / "b"), "sim", dataset=simulated.to_json())
    assert sim_run.get_int_custom_property(FOUND) == 1


def test_serving_baseline_copies_the_model_serving_now_or_marks_none(tmp_path):
    root = str(tmp_path / "serving")
    examples = _examples(tmp_path)
    first = _run_baseline(tmp_path, root, examples, "first")
    assert first.get_int_custom_property(FOUND) == 0
    identity = serving.training_identity("abc", CONFIG)
    _version(root, 1, identity="older model")
    _version(root, 2, identity=identity)  # this candidate's own model, pushed by an earlier run
    chosen = _run_baseline(tmp_path, root, examples, "chosen")
    assert chosen.get_int_custom_property(FOUND) == 1
    assert chosen.get_string_custom_property(SERVING_VERSION) == "1"
    copied = os.path.join(chosen.uri, contract.SERVING_MODEL_DIR, "saved_model.pb")
    assert open(copied, "rb").read() == b"model"


def test_serving_baseline_refuses_a_baseline_whose_files_changed_and_the_verdict_names_it(tmp_path):
    import datetime

    from contract import OutputLayout
    from pipeline.definition import status as st
    from pipeline.results.summary import Executed, _environment, _unverified
    from pipeline.results.verdict import Verdict

    root = str(tmp_path / "serving")
    _version(root, 1, identity="older model")
    open(os.path.join(root, "1", "saved_model.pb"), "wb").write(b"changed after the push")
    with pytest.raises(serving.UnverifiedVersionError, match="saved_model.pb differs") as refused:
        _run_baseline(tmp_path, root, _examples(tmp_path))
    # What the run's verdict makes of it, through the runner's wrapping: the machine's fault, named.
    try:
        raise RuntimeError("component failed") from refused.value
    except RuntimeError as wrapped:
        assert "saved_model.pb differs" in _unverified(wrapped)
        done = Executed(wrapped, {}, None, {}, datetime.datetime.now())
        verdict = _environment(Verdict(st.FAILED, st.EXIT_FAILED, "failed"), done, OutputLayout(str(tmp_path)))
    assert verdict.exit_code == st.EXIT_ENVIRONMENT and "saved_model.pb differs" in verdict.message


def _model(tmp_path) -> standard_artifacts.Model:
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    folder = tmp_path / "model" / contract.SERVING_MODEL_DIR
    (folder / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "saved_model.pb").write_bytes(b"model")
    (folder / "variables" / "variables.index").write_bytes(b"index")
    (folder / "assets.extra").mkdir(exist_ok=True)
    policy = {"kind": "precision", "min_precision": 0.8}
    (folder / contract.OPERATING_THRESHOLD).write_text(json.dumps({"threshold": 0.3, "policy": policy}))
    (folder / contract.TRAINING_SUMMARY).write_text(json.dumps({"hparams": {"units": 16}, "history": {}}))
    return model


def _push(tmp_path, root, examples, training_config=CONFIG, name="pushed"):
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", 1)
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / name)
    component = pusher.Pusher(model=None, model_blessing=None, serving_dir=root, training_config=training_config)
    pusher.Executor().Do(
        {"model": [_model(tmp_path)], "model_blessing": [blessing], "examples": [examples]},
        {"pushed_model": [pushed]},
        dict(component.exec_properties),
    )
    return pushed


def test_the_pusher_records_lineage_and_does_not_push_the_serving_model_again(tmp_path):
    root = str(tmp_path / "serving")
    examples = _examples(tmp_path)
    first = _push(tmp_path, root, examples, name="first")
    (version,) = serving.complete_versions(root)
    lineage = serving.read_lineage(os.path.join(root, str(version)))
    assert lineage["identity"] == serving.training_identity("abc", CONFIG)
    assert lineage["data"]["files"] == ["a.csv"] and lineage["training_config"] == json.loads(CONFIG)
    assert first.get_int_custom_property(pusher.ALREADY_SERVING) == 0
    # The same model again (a retrain on the same data, code and settings): nothing new in the serving folder.
    again = _push(tmp_path, root, examples, name="again")
    assert serving.complete_versions(root) == [version]
    assert again.get_int_custom_property(pusher.ALREADY_SERVING) == 1
    assert again.get_string_custom_property("pushed_destination") == os.path.join(root, str(version))
    # Each version carries its model card, written before it appeared.
    assert (Path(root) / str(version) / "assets.extra" / "model_card.md").is_file()
    # Another configuration is another model: pushed.
    _push(tmp_path, root, examples, training_config=json.dumps({"hparams": {"units": 64}}), name="other")
    assert len(serving.complete_versions(root)) == 2
