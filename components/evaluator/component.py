"""The Evaluator: TFX's, with an empty ServingBaseline output read as no baseline, and the project's TFMA extractors.

The Evaluator has no code version of its own: the project code it runs (this module, its extractors, and the metric
classes its EvalConfig names, compat/tfma.py) is fingerprinted with ServingBaseline's (pipeline/definition/config.py,
COMPONENT_CODE), so a change to it re-runs ServingBaseline, and with its new output the Evaluator.
"""

import logging
import os

import numpy as np
import tensorflow_model_analysis as tfma
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import constants as tfx_evaluator_constants
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.components.util import tfxio_utils, udf_utils
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, path_utils, proto_utils

import contract
from compat import tfma as tfma_metrics  # noqa: F401 - the metric classes the EvalConfig names: fingerprinted here
from components.evaluator import extractors, in_process
from components.lib import examples_io

# Arrays longer than this print as a summary while the Evaluator runs.
_PRINTED_VALUES = 16


class EvaluatorExecutor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor; an empty ServingBaseline output counts as no baseline (value gates only). On the
    in-process runner the evaluation is done on whole columns when that gives TFMA's results
    (components/evaluator/in_process.py); otherwise, and on every other runner, TFX's Beam executor runs."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        given = input_dict.get(key) or []
        if given and given[0].get_int_custom_property(contract.BASELINE_FOUND_PROPERTY) != 1:
            input_dict = {**input_dict, key: []}
        try:
            self._in_process(input_dict, output_dict, exec_properties)
            return
        except in_process.Declined as e:
            logging.info("Evaluator: TFX's Beam executor runs: %s", e)
        # TFMA calls each model's signature with a batch of serialized examples as one positional argument. A loaded
        # signature binds keyword arguments only, so TensorFlow first raises a TypeError whose message prints the
        # whole batch, then calls it by position (its flat signature), which works; numpy prints up to 1,000 values
        # in full, so every batch of 1,000 was printed to be thrown away. A summary (the first and last three)
        # prints the same message at no cost; numpy's options are process-wide in numpy 1.x, so they are restored.
        with np.printoptions(threshold=_PRINTED_VALUES):
            super().Do(input_dict, output_dict, exec_properties)

    def _in_process(self, input_dict, output_dict, exec_properties) -> None:
        """TFX's Do (tfx/components/evaluator/executor.py) with the evaluation in_process.evaluate; Declined before
        anything is written where it would not be TFMA's."""
        if not examples_io.in_process_runner(self._beam_pipeline_args):
            raise in_process.Declined("the Beam args name another runner or more workers")
        if not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
            raise in_process.Declined("no eval config (a feature slicing spec)")
        if standard_component_specs.MODEL_KEY not in input_dict:
            raise in_process.Declined("no model")
        _, extra_packages = udf_utils.decode_user_module_key(
            exec_properties.get(standard_component_specs.MODULE_PATH_KEY, None)
        )
        if extra_packages or udf_utils.try_get_fn(exec_properties, "custom_eval_shared_model"):
            raise in_process.Declined("extra packages or a custom eval shared model")
        has_baseline = bool(input_dict.get(standard_component_specs.BASELINE_MODEL_KEY))
        eval_config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], eval_config)
        eval_config = tfma.utils.update_eval_config_with_defaults(
            eval_config, has_baseline=has_baseline, rubber_stamp=True
        )
        tfma.utils.verify_eval_config(eval_config)
        if not tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config=eval_config):
            raise in_process.Declined("no thresholds (no blessing)")
        if len(eval_config.model_specs) > 2:
            raise in_process.Declined("more than two models")
        shared, paths = [], {}
        for spec in eval_config.model_specs:
            key = (
                standard_component_specs.BASELINE_MODEL_KEY if spec.is_baseline else standard_component_specs.MODEL_KEY
            )
            model = artifact_utils.get_single_instance(input_dict[key])
            paths[spec.name] = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
            shared.append(
                tfma.default_eval_shared_model(
                    eval_saved_model_path=paths[spec.name],
                    model_name=spec.name,
                    eval_config=eval_config,
                    add_metrics_callbacks=None,
                )
            )
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        payload_format, data_view = tfxio_utils.resolve_payload_format_and_data_view_uri(examples)
        if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE or data_view:
            raise in_process.Declined("examples that are not tf.Examples")
        splits = json_utils.loads(exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY, "null")) or ["eval"]
        try:
            files = [path for split in splits for path in examples_io.split_files(examples, split)]
        except examples_io.NotCanonical as e:
            raise in_process.Declined(str(e)) from e
        output_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.EVALUATION_KEY])
        with np.printoptions(threshold=_PRINTED_VALUES):
            in_process.evaluate(eval_config, shared, paths, files, output_uri, self._make_beam_pipeline())
        _bless(input_dict, output_dict, exec_properties, output_uri)


def _bless(input_dict, output_dict, exec_properties, output_uri: str) -> None:
    """The blessing as TFX's executor writes it after an evaluation with thresholds."""
    constants = tfx_evaluator_constants
    blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
    model = input_dict[standard_component_specs.MODEL_KEY][0]
    blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if input_dict.get(standard_component_specs.BASELINE_MODEL_KEY):
        baseline = input_dict[standard_component_specs.BASELINE_MODEL_KEY][0]
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
    if "current_component_id" in exec_properties:
        blessing.set_string_custom_property("component_id", exec_properties["current_component_id"])
    ok = tfma.load_validation_result(output_uri).validation_ok
    name = constants.BLESSED_FILE_NAME if ok else constants.NOT_BLESSED_FILE_NAME
    io_utils.write_string_file(os.path.join(blessing.uri, name), "")
    blessing.set_int_custom_property(
        constants.ARTIFACT_PROPERTY_BLESSED_KEY, constants.BLESSED_VALUE if ok else constants.NOT_BLESSED_VALUE
    )
    logging.info("Blessing result %s written to %s.", ok, blessing.uri)


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator (same id, inputs and outputs) with the executor above, and by default the project's TFMA
    extractors (components.evaluator.extractors: TFMA's, with the extracts trimmed to what slicing reads)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)

    def __init__(self, *args, module_path: str | None = extractors.__name__, **kwargs):
        super().__init__(*args, module_path=module_path, **kwargs)
