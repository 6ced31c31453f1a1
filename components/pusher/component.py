"""Pusher with versions that are never lost and never seen half-written.

TFX 1.16's Pusher names a version by the Unix second and, when that folder exists already (two pushes within one
second, or two runs pushing at once), skips the copy but still records the push. This one:
- takes the next free version instead: max(now in seconds, newest existing version + 1);
- on a local file system, copies the model into a hidden staging folder (TF Serving watches only numeric folder
  names) and renames it into place, which is atomic: a server polling the folder sees no version or a whole one.
  If another push took that version meanwhile, the rename fails and the next number is tried;
- on an object store (gs://, s3://), where a folder cannot be renamed at once, copies into the version folder with
  saved_model.pb last, as TFX does: TF Serving loads a version only once saved_model.pb is there.
Given the run's raw examples, it also writes TF Serving warm-up requests into the version before it appears
(components/pusher/warmup.py), so a server loads it warm, and the model's lineage (contract.LINEAGE: the data and
training configuration it came from and their hash, its training identity). A blessed model whose identity is
that of the version serving now is not pushed again: it is the same model, retrained (on Kubeflow and Vertex every
run retrains, since CsvExampleGen is not cached there), and a second copy would only make TF Serving reload it.
"""

import datetime
import errno
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable

from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, channel, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

import contract
from components.lib import serving
from components.lib.serving import SAVED_MODEL_FILE
from components.pusher import model_card, warmup

STAGING_PREFIX = ".staging-"
# Custom property of the PushedModel artifact: 1 when the model was already the one serving (nothing copied).
ALREADY_SERVING = "already_serving"
# Custom property of the PushedModel artifact: the version a rollback took this same model out as (not pushed).
ROLLED_BACK = "rolled_back_version"
TRAINING_CONFIG_KEY = "training_config"


def versions(base_directory: str) -> list[int]:
    """The numeric version folders under base_directory, oldest first (through TFX's fileio, as the push writes)."""
    if not fileio.exists(base_directory):
        return []
    return sorted(
        int(name.rstrip("/")) for name in fileio.listdir(base_directory) if contract.is_version(name.rstrip("/"))
    )


def copy_model(model_path: str, destination: str, add=None, version: str = "") -> None:
    """Copies a SavedModel folder with saved_model.pb last (the file a model server waits for); add(destination,
    version), when given, writes more files into the copy before that. The manifest of every file (contract.MANIFEST,
    saved_model.pb's digest taken from the source) is written just before saved_model.pb."""
    io_utils.copy_dir(model_path, destination, deny_regex_patterns=[SAVED_MODEL_FILE.replace(".", r"\.")])
    if add is not None:
        add(destination, version)
    source = os.path.join(model_path, SAVED_MODEL_FILE)
    last = {SAVED_MODEL_FILE: serving.file_digest(source)} if fileio.exists(source) else {}
    serving.write_manifest(destination, last)
    if last:
        io_utils.copy_file(source, os.path.join(destination, SAVED_MODEL_FILE))


def push(
    model_path: str,
    base_directory: str,
    clock: Callable[[], float] = time.time,
    add: Callable[[str, str], None] | None = None,
) -> tuple[str, str]:
    """Pushes the model into a new version folder of base_directory; returns (version, its path).

    Args:
      add: writes more files into the version (called with its folder and version number) before it becomes
        visible; called again with the next number when a racing push took the first one.
    """
    fileio.makedirs(base_directory)
    existing = versions(base_directory)
    version = max(int(clock()), existing[-1] + 1 if existing else 0)
    if "://" in base_directory:
        while fileio.exists(os.path.join(base_directory, str(version))):
            version += 1
        target = os.path.join(base_directory, str(version))
        copy_model(model_path, target, add, str(version))
        return str(version), target
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    try:
        copy_model(model_path, staging, add, str(version))
        # Durable, not only atomic: every byte is on disk before the version can be seen.
        serving.fsync_tree(staging)
        with serving.locked(base_directory):  # a rollback's moves and this rename exclude each other
            while True:
                target = os.path.join(base_directory, str(version))
                try:
                    # Atomic; it fails when the target is a folder that is not empty (another push took this version).
                    os.rename(staging, target)
                    serving.fsync_path(base_directory)
                    return str(version), target
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                        raise
                    version += 1
                    if add is not None:
                        add(staging, str(version))
                        serving.write_manifest(staging)
                        serving.fsync_tree(staging)
    except BaseException:
        # A copy that failed half-way (a full disk) leaves nothing behind to take up the space it needs next time.
        shutil.rmtree(staging, ignore_errors=True)
        raise


class Executor(tfx_pusher_executor.Executor):
    """TFX's Pusher executor, with push() in place of its copy to a timestamp folder."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(output_dict[standard_component_specs.PUSHED_MODEL_KEY])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("this Pusher pushes to a file system folder only")
        base = destination.filesystem.base_directory
        examples = input_dict.get(EXAMPLES_KEY)
        lineage = _lineage(input_dict, exec_properties) if examples else None
        now = serving.serving_now(base)
        refused = (
            serving.rolled_back_identity(base, lineage["identity"])
            if lineage is not None and "://" not in base
            else None
        )
        if refused is not None:
            # A person took this very model out of serving: pushing it again would undo that. Retrain on other data
            # or settings (a new identity), or move the version back by hand.
            version, event = refused
            logging.warning("this model was rolled back (version %s, %s); not pushing it again", version, event)
            model_push.set_int_custom_property(ROLLED_BACK, version)
            self._MarkNotPushed(model_push)
            return
        if lineage is not None and now is not None and serving.identity_of(now[1]) == lineage["identity"]:
            logging.info("the model serving now (version %s) is this model: nothing pushed again", now[0])
            model_push.set_int_custom_property(ALREADY_SERVING, 1)
            self._MarkPushed(model_push, pushed_destination=now[1], pushed_version=str(now[0]))
            return
        statistics = input_dict.get(STATISTICS_KEY)
        add = None
        if examples:
            label = serving.dataset_of_model(model_path).label
            records = warmup.raw_examples(examples, label=label)
            logs = warmup.requests(records)
            inputs_file = os.path.join(model_path, contract.FEATURES_INPUTS)
            if fileio.exists(inputs_file):
                # The raw-features signature warms up too (a model from before it had none).
                with fileio.open(inputs_file) as f:
                    logs += warmup.feature_requests(records, json.load(f))

            def add(folder: str, version: str) -> None:
                warmup.write(folder, logs)
                model_card.write(folder, _card(input_dict, lineage, model_path, version))
                io_utils.write_string_file(
                    os.path.join(folder, contract.LINEAGE), json.dumps(lineage, indent=2, sort_keys=True)
                )
                if statistics:
                    # What `predict` compares each scoring batch with: the data this model learnt from.
                    train = os.path.join(artifact_utils.get_split_uri(statistics, "train"), contract.STATISTICS_FILE)
                    io_utils.copy_file(train, os.path.join(folder, contract.TRAIN_STATISTICS))

        version, serving_path = push(model_path, base, add=add)
        # The archive copy in the artifact, as TFX's Pusher keeps it (with the warm-up requests, as pushed).
        io_utils.copy_dir(serving_path, model_push.uri)
        model_push.set_int_custom_property(ALREADY_SERVING, 0)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)


def _lineage(input_dict, exec_properties) -> dict:
    """What the pushed version records of where it came from (contract.LINEAGE)."""
    examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
    model = artifact_utils.get_single_instance(input_dict[standard_component_specs.MODEL_KEY])
    custom = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "{}")
    training_config = custom.get(TRAINING_CONFIG_KEY) or "{}"
    spec = serving.dataset_of_model(model.uri)
    return {
        "dataset": {"name": spec.name, "digest": spec.digest()},
        "identity": serving.examples_training_identity(examples, training_config),
        "data": {
            "fingerprint": examples.get_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY),
            "files": json.loads(examples.get_string_custom_property(contract.DATA_FILES_PROPERTY) or "[]"),
            "spans": json.loads(examples.get_string_custom_property("spans") or "null"),
            "examples_uri": examples.uri,
        },
        "training_config": json.loads(training_config),
        # The blessing gates this model passed: what `outcomes` holds its realized performance to.
        "gates": json.loads(custom.get(GATES_KEY) or "null"),
        "model_uri": model.uri,
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


EXAMPLES_KEY = "examples"
GATES_KEY = "gates"
STATISTICS_KEY = "statistics"
EVALUATION_KEY = "evaluation"
DRIFT_KEY = "drift_anomalies"


def _single(input_dict, key):
    found = input_dict.get(key)
    return artifact_utils.get_single_instance(found) if found else None


def _card(input_dict, lineage: dict, model_path: str, version: str) -> dict:
    """The version's model card from the run's artifacts (components/pusher/model_card.py)."""
    return model_card.card(
        version=version,
        lineage=lineage,
        evaluation=_single(input_dict, EVALUATION_KEY),
        blessing=_single(input_dict, standard_component_specs.MODEL_BLESSING_KEY),
        statistics=_single(input_dict, STATISTICS_KEY),
        drift_anomalies=_single(input_dict, DRIFT_KEY),
        model_dir=model_path,
        pushed_at=lineage["pushed_at"],
    )


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec with one more optional input: the raw examples the warm-up requests are drawn from."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples, optional=True),
        STATISTICS_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
        EVALUATION_KEY: component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation, optional=True),
        DRIFT_KEY: component_spec.ChannelParameter(type=standard_artifacts.ExampleAnomalies, optional=True),
    }


class Pusher(pusher_component.Pusher):
    """TFX's Pusher component (same id, inputs and outputs, plus examples) with the executor above."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        model,
        model_blessing,
        serving_dir: str,
        code_version: str = "",
        examples=None,
        training_config: str = "",
        statistics=None,
        evaluation=None,
        drift_anomalies=None,
        gates: str = "",
    ):
        """Args: model, model_blessing: channels; serving_dir: the folder of versions; code_version: this code's
        fingerprint, in custom_config so that a change to it re-runs the Pusher; examples: ExampleGen's raw
        examples, to write TF Serving warm-up requests from (none without it) and whose data fingerprint is half
        the model's identity; training_config: the other half (JSON); statistics: StatisticsGen's output, whose
        train split goes into the version for `predict`'s serving skew; evaluation, drift_anomalies: the
        Evaluator's and the DistributionValidator's outputs, for the version's model card; gates: the blessing
        gates the model was held to (JSON of GateConfig), recorded in its lineage for `outcomes`."""
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            statistics=statistics,
            evaluation=evaluation,
            drift_anomalies=drift_anomalies,
            push_destination=pusher_pb2.PushDestination(
                filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_dir)
            ),
            custom_config=json_utils.dumps(
                {"code_version": code_version, TRAINING_CONFIG_KEY: training_config, GATES_KEY: gates}
            ),
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
