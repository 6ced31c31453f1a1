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
(components/warmup.py), so a server loads it warm, and the model's lineage (contract.LINEAGE: the data and training
configuration it came from and their hash, its training identity). A blessed model whose identity is that of the
version serving now is not pushed again: it is the same model, retrained (on Kubeflow and Vertex every run retrains,
since CsvExampleGen is not cached there), and a second copy would only make TF Serving reload it.
"""

import datetime
import errno
import json
import logging
import os
import time
import uuid
from collections.abc import Callable

from tfx import v1 as tfx
from tfx.components.pusher import executor as tfx_pusher_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, channel, component_spec, standard_artifacts, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

import contract
from components import serving, warmup
from components.serving import SAVED_MODEL_FILE
from components.serving_baseline import training_identity

STAGING_PREFIX = ".staging-"
# Custom property of the PushedModel artifact: 1 when the model was already the one serving (nothing copied).
ALREADY_SERVING = "already_serving"
TRAINING_CONFIG_KEY = "training_config"


def versions(base_directory: str) -> list[int]:
    """The numeric version folders under base_directory, oldest first (through TFX's fileio, as the push writes)."""
    if not fileio.exists(base_directory):
        return []
    return sorted(int(name.rstrip("/")) for name in fileio.listdir(base_directory) if name.rstrip("/").isdigit())


def copy_model(model_path: str, destination: str, add: Callable[[str], None] | None = None) -> None:
    """Copies a SavedModel folder with saved_model.pb last (the file a model server waits for); add(destination),
    when given, writes more files into the copy before that."""
    io_utils.copy_dir(model_path, destination, deny_regex_patterns=[SAVED_MODEL_FILE.replace(".", r"\.")])
    if add is not None:
        add(destination)
    source = os.path.join(model_path, SAVED_MODEL_FILE)
    if fileio.exists(source):
        io_utils.copy_file(source, os.path.join(destination, SAVED_MODEL_FILE))


def push(
    model_path: str,
    base_directory: str,
    clock: Callable[[], float] = time.time,
    add: Callable[[str], None] | None = None,
) -> tuple[str, str]:
    """Pushes the model into a new version folder of base_directory; returns (version, its path).

    Args:
      add: writes more files into the version (called with its folder) before it becomes visible.
    """
    fileio.makedirs(base_directory)
    existing = versions(base_directory)
    version = max(int(clock()), existing[-1] + 1 if existing else 0)
    if "://" in base_directory:
        while fileio.exists(os.path.join(base_directory, str(version))):
            version += 1
        target = os.path.join(base_directory, str(version))
        copy_model(model_path, target, add)
        return str(version), target
    staging = os.path.join(base_directory, f"{STAGING_PREFIX}{uuid.uuid4().hex}")
    copy_model(model_path, staging, add)
    while True:
        target = os.path.join(base_directory, str(version))
        try:
            # Atomic; it fails when the target is a folder that is not empty (another push took this version).
            os.rename(staging, target)
            return str(version), target
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            version += 1


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
        if lineage is not None and now is not None and serving.identity_of(now[1]) == lineage["identity"]:
            logging.info("the model serving now (version %s) is this model: nothing pushed again", now[0])
            model_push.set_int_custom_property(ALREADY_SERVING, 1)
            self._MarkPushed(model_push, pushed_destination=now[1], pushed_version=str(now[0]))
            return
        add = None
        if examples:
            logs = warmup.requests(warmup.raw_examples(examples))

            def add(folder: str) -> None:
                warmup.write(folder, logs)
                io_utils.write_string_file(
                    os.path.join(folder, contract.LINEAGE), json.dumps(lineage, indent=2, sort_keys=True)
                )

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
    return {
        "identity": training_identity(examples, training_config),
        "data": {
            "fingerprint": examples.get_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY),
            "files": json.loads(examples.get_string_custom_property(contract.DATA_FILES_PROPERTY) or "[]"),
            "spans": json.loads(examples.get_string_custom_property("spans") or "null"),
            "examples_uri": examples.uri,
        },
        "training_config": json.loads(training_config),
        "model_uri": model.uri,
        "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


EXAMPLES_KEY = "examples"


class PusherSpec(standard_component_specs.PusherSpec):
    """TFX's Pusher spec with one more optional input: the raw examples the warm-up requests are drawn from."""

    INPUTS = {
        **standard_component_specs.PusherSpec.INPUTS,
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples, optional=True),
    }


class Pusher(tfx.components.Pusher):
    """TFX's Pusher component (same id, inputs and outputs, plus examples) with the executor above."""

    SPEC_CLASS = PusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self, model, model_blessing, serving_dir: str, code_version: str = "", examples=None, training_config: str = ""
    ):
        """Args: model, model_blessing: channels; serving_dir: the folder of versions; code_version: this code's
        fingerprint, in custom_config so that a change to it re-runs the Pusher; examples: ExampleGen's raw
        examples, to write TF Serving warm-up requests from (none without it) and whose data fingerprint is half
        the model's identity; training_config: the other half (JSON)."""
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
            ),
            custom_config=json_utils.dumps({"code_version": code_version, TRAINING_CONFIG_KEY: training_config}),
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
