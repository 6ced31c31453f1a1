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
(components/warmup.py), so a server loads it warm.
"""

import errno
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

from components import warmup

SAVED_MODEL_FILE = "saved_model.pb"
STAGING_PREFIX = ".staging-"


def versions(base_directory: str) -> list[int]:
    """The numeric version folders under base_directory, oldest first."""
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
        add = None
        if input_dict.get(EXAMPLES_KEY):
            logs = warmup.requests(warmup.raw_examples(input_dict[EXAMPLES_KEY]))
            add = lambda folder: warmup.write(folder, logs)  # noqa: E731
        version, serving_path = push(model_path, destination.filesystem.base_directory, add=add)
        # The archive copy in the artifact, as TFX's Pusher keeps it (with the warm-up requests, as pushed).
        io_utils.copy_dir(serving_path, model_push.uri)
        self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=version)


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

    def __init__(self, model, model_blessing, serving_dir: str, code_version: str = "", examples=None):
        """Args: model, model_blessing: channels; serving_dir: the folder of versions; code_version: this code's
        fingerprint, in custom_config so that a change to it re-runs the Pusher; examples: ExampleGen's raw
        examples, to write TF Serving warm-up requests from (none without it)."""
        spec = PusherSpec(
            model=model,
            model_blessing=model_blessing,
            examples=examples,
            push_destination=tfx.proto.PushDestination(
                filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_dir)
            ),
            custom_config=json_utils.dumps({"code_version": code_version}),
            pushed_model=channel.Channel(type=standard_artifacts.PushedModel),
        )
        base_component.BaseComponent.__init__(self, spec=spec)
