"""The Evaluator: TFX's, with an empty ServingBaseline output read as no baseline, and the project's TFMA extractors.

The Evaluator has no code version of its own: the project code it runs (this module, its extractors, and the metric
classes its EvalConfig names, compat/tfma.py) is fingerprinted with ServingBaseline's (pipeline/definition/config.py,
COMPONENT_CODE), so a change to it re-runs ServingBaseline, and with its new output the Evaluator.
"""

import numpy as np
from tfx.components.evaluator import component as evaluator_component
from tfx.components.evaluator import executor as tfx_evaluator_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import standard_component_specs

import contract
from compat import tfma as tfma_metrics  # noqa: F401 - the metric classes the EvalConfig names: fingerprinted here
from components.evaluator import extractors

# Arrays longer than this print as a summary while the Evaluator runs.
_PRINTED_VALUES = 16


class EvaluatorExecutor(tfx_evaluator_executor.Executor):
    """TFX's Evaluator executor; an empty ServingBaseline output counts as no baseline (value gates only)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        key = standard_component_specs.BASELINE_MODEL_KEY
        given = input_dict.get(key) or []
        if given and given[0].get_int_custom_property(contract.BASELINE_FOUND_PROPERTY) != 1:
            input_dict = {**input_dict, key: []}
        # TFMA calls each model's signature with a batch of serialized examples as one positional argument. A loaded
        # signature binds keyword arguments only, so TensorFlow first raises a TypeError whose message prints the
        # whole batch, then calls it by position (its flat signature), which works; numpy prints up to 1,000 values
        # in full, so every batch of 1,000 was printed to be thrown away. A summary (the first and last three)
        # prints the same message at no cost; numpy's options are process-wide in numpy 1.x, so they are restored.
        with np.printoptions(threshold=_PRINTED_VALUES):
            super().Do(input_dict, output_dict, exec_properties)


class Evaluator(evaluator_component.Evaluator):
    """TFX's Evaluator (same id, inputs and outputs) with the executor above, and by default the project's TFMA
    extractors (components.evaluator.extractors: TFMA's, with the extracts trimmed to what slicing reads)."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(EvaluatorExecutor)

    def __init__(self, *args, module_path: str | None = extractors.__name__, **kwargs):
        super().__init__(*args, module_path=module_path, **kwargs)
