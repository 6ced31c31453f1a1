"""The library overrides in compat/: each checks the installed version it was written against, and where another
version is installed (faked here) it says so and the library's own path runs; each module says what it replaces."""

import ast
import logging
import re

import pytest
from tfx.dsl.component.experimental.annotations import OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

import compat
from compat import beam as beam_compat
from compat import importlib_metadata, tfdv, tfma, tfma_columns, tfx, tfx_transform
from compat import tensorflow as tensorflow_compat
from tests.support import ROOT

MODULES = sorted(p for p in (ROOT / "compat").glob("*.py") if p.name != "__init__.py")


@pytest.fixture
def other_version(monkeypatch):
    """Fakes another installed version of a distribution (as if the lock had moved on without the overrides)."""

    def fake(distribution: str):
        monkeypatch.setitem(compat.INSTALLED, distribution, "0.0.0-other")
        monkeypatch.setattr(compat, "_warned", set())

    return fake


def test_the_versions_written_against_are_the_locked_ones():
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    for name, version in compat.WRITTEN_AGAINST.items():
        if name != "python":
            assert pins[name] == version, name
    assert all(compat.INSTALLED[name] == v for name, v in compat.WRITTEN_AGAINST.items())  # this venv is the lock's


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_each_override_says_what_it_replaces_why_and_what_compares_it(path):
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source)) or ""
    for part in ("Replaces:", "Why:", "Compared with"):
        assert part in doc, f"{path.name}: {part}"
    named = re.findall(r"tests/(test_\w+\.py)", doc)
    assert named and all((ROOT / "tests" / n).is_file() for n in named), path.name
    distributions = ast.literal_eval(re.search(r"^DISTRIBUTIONS = (.+)$", source, re.M).group(1))
    assert set(distributions) <= set(compat.WRITTEN_AGAINST), path.name
    assert "compat.supported(" in source, path.name


def test_another_version_is_named_once_in_the_log(other_version, caplog):
    assert compat.supported("tfma", "tensorflow-model-analysis")
    other_version("tensorflow-model-analysis")
    with caplog.at_level(logging.WARNING, logger="compat"):
        assert not compat.supported("tfma", "tensorflow-model-analysis")
        assert not compat.supported("tfma", "tensorflow-model-analysis")
    (record,) = caplog.records
    assert "tensorflow-model-analysis 0.47.1" in record.getMessage() and "0.0.0-other" in record.getMessage()


def test_tfma_metrics_fall_back_to_tfmas_classes(other_version):
    assert tfma.metric_class("AUC") == ("compat.tfma", "FastAUC")
    assert tfma.metric_class("MeanLabel") == ("", "MeanLabel")  # no Fast class: TFMA's
    from tensorflow_model_analysis.extractors import slice_key_extractor

    extractor = slice_key_extractor.SliceKeyExtractor()
    assert tfma.slice_key_arguments(extractor) is not None
    other_version("tensorflow-model-analysis")
    assert tfma.metric_class("AUC") == ("", "AUC")
    assert tfma.slice_key_arguments(extractor) is None


def test_transform_reads_with_tfxs_processor_on_another_version(other_version):
    from tfx.components.transform import executor as tfx_executor

    stock = tfx_executor.TransformProcessor
    with tfx_transform.examples_read_by(lambda *a: None):
        assert tfx_executor.TransformProcessor is not stock
        assert issubclass(tfx_executor.TransformProcessor, stock)
    assert tfx_executor.TransformProcessor is stock
    other_version("tfx-bsl")
    with tfx_transform.examples_read_by(lambda *a: None):
        assert tfx_executor.TransformProcessor is stock


def _written(tmp_path, name: str) -> list[bytes]:
    import apache_beam as beam
    import tensorflow as tf

    elements = [b"one", [b"two", b"three"], b"four", [b"five"]]
    prefix = str(tmp_path / name / "records")
    with beam.Pipeline() as pipeline:
        _ = pipeline | beam.Create(elements) | beam_compat.WriteRecords(prefix, ".gz", 1)
    files = sorted(str(p) for p in (tmp_path / name).glob("records*.gz"))
    return sorted(r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))


def test_the_records_sink_writes_what_beams_own_writer_writes(tmp_path, other_version):
    ours = _written(tmp_path, "ours")
    other_version("apache-beam")
    beams = _written(tmp_path, "beams")
    assert ours == beams == sorted([b"one", b"two", b"three", b"four", b"five"])


def test_a_blocks_records_are_framed_to_the_byte_as_beam_frames_each(monkeypatch):
    """The framing with google-crc32c's checksums, and without it (Beam's own function), are Beam's bytes."""
    import io
    import os

    from apache_beam.io import tfrecordio

    records = [b"", b"x", os.urandom(300), os.urandom(70_000), b"\x00" * 129]
    beams = io.BytesIO()
    for record in records:
        tfrecordio._TFRecordUtil.write_record(beams, record)
    assert beam_compat.google_crc32c is not None, "google-crc32c is a pinned dependency (requirements.lock)"
    assert beam_compat.framed(records) == beams.getvalue()
    monkeypatch.setattr(beam_compat, "google_crc32c", None)
    assert beam_compat.framed(records) == beams.getvalue()


def test_tfdv_counts_top_values_exactly_only_on_its_version(other_version):
    from tensorflow_data_validation.statistics import stats_options

    generators = tfdv.exact_generators(stats_options.StatsOptions())
    assert sum(isinstance(g, tfdv.ExactTopKUniques) for g in generators) == 1
    other_version("tensorflow-data-validation")
    assert tfdv.exact_generators(stats_options.StatsOptions()) is None


def test_tfx_packages_itself_and_launches_as_it_is_on_another_version(other_version, monkeypatch):
    from tfx.orchestration.local import local_dag_runner
    from tfx.utils import dependency_utils

    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags", dependency_utils.make_beam_dependency_flags)
    stock_flags, stock_launcher = dependency_utils.make_beam_dependency_flags, local_dag_runner.launcher
    with tfx.component_launches(print, print) as hooked:
        assert hooked and local_dag_runner.launcher is not stock_launcher
    assert local_dag_runner.launcher is stock_launcher
    other_version("tfx")
    tfx.skip_dependency_packaging(lambda args: True)
    assert dependency_utils.make_beam_dependency_flags is stock_flags
    with tfx.component_launches(print, print) as hooked:
        assert not hooked and local_dag_runner.launcher is stock_launcher


@component
def Make(out: OutputArtifact[standard_artifacts.String], text: Parameter[str] = "x"):
    out.value = text


def test_the_launch_hooks_see_every_component_of_a_local_run(tmp_path):
    """A two-component pipeline on LocalDagRunner: each launch is announced before and after, in order."""
    from tfx import v1 as tfx_v1

    first, second = Make(text="a").with_id("First"), Make(text="b").with_id("Second")
    pipeline = tfx_v1.dsl.Pipeline(
        pipeline_name="hooks",
        pipeline_root=str(tmp_path / "root"),
        components=[first, second],
        metadata_connection_config=tfx_v1.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "m.sqlite")
        ),
    )
    seen = []
    with tfx.component_launches(lambda n: seen.append(("started", n)), lambda n: seen.append(("finished", n))):
        tfx_v1.orchestration.LocalDagRunner().run(pipeline)
    assert seen == [("started", "First"), ("finished", "First"), ("started", "Second"), ("finished", "Second")]


def test_autograph_keeps_its_rules_on_another_version(other_version, monkeypatch):
    from tensorflow.python.autograph.core import config as autograph_config

    monkeypatch.setattr(autograph_config, "CONVERSION_RULES", autograph_config.CONVERSION_RULES)
    other_version("tensorflow")
    before = autograph_config.CONVERSION_RULES
    tensorflow_compat.keras_runs_as_written()
    assert autograph_config.CONVERSION_RULES is before
    monkeypatch.setitem(compat.INSTALLED, "tensorflow", compat.WRITTEN_AGAINST["tensorflow"])
    tensorflow_compat.keras_runs_as_written()
    assert "tf_keras" in str(autograph_config.CONVERSION_RULES[0])


def test_installed_distributions_are_read_every_time_on_another_python(other_version, monkeypatch):
    from importlib import metadata

    monkeypatch.setattr(metadata, "packages_distributions", metadata.packages_distributions)
    before = metadata.packages_distributions
    other_version("python")
    importlib_metadata.scan_installed_distributions_once()
    assert metadata.packages_distributions is before


def test_mlmd_strings_for_postgresql_come_back_as_they_were_and_hold_no_backslash():
    from compat import mlmd

    marker = mlmd.MARKER
    texts = ["", "plain", "a\\b", "\\", '{"c": "{\\"n\\": 1}"}', marker, marker + "b", "\\" + marker + marker + "b\\"]
    for text in texts:
        encoded = mlmd.encode(text)
        assert "\\" not in encoded and mlmd.decode(encoded) == text, text
    assert mlmd.encode("no backslash") == "no backslash"  # a store written before reads the same


def test_mlmd_keeps_its_own_call_on_another_version(other_version):
    from ml_metadata.metadata_store import metadata_store
    from tfx.orchestration import metadata as tfx_metadata

    from compat import mlmd

    before, entered = metadata_store.MetadataStore._call, tfx_metadata.Metadata.__enter__
    other_version("ml-metadata")
    assert mlmd.install() is False and mlmd.share_connections() is False
    assert metadata_store.MetadataStore._call is before and tfx_metadata.Metadata.__enter__ is entered


def test_the_evaluator_leaves_the_evaluation_to_tfma_on_another_version(other_version):
    from components.evaluator import in_process

    assert tfma_columns.available()
    other_version("tensorflow-model-analysis")
    assert not tfma_columns.available()
    with pytest.raises(in_process.Declined, match="another version"):
        in_process.evaluate(None, [object()], {}, [], "", None)
