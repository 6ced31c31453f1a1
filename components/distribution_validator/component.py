"""TFX's DistributionValidator, with its config parsed where Kubeflow Pipelines and Vertex AI hand it over as text."""

from tfx.components.distribution_validator import component as distribution_validator_component
from tfx.components.distribution_validator import executor as distribution_validator_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import distribution_validator_pb2
from tfx.types import standard_component_specs
from tfx.utils import proto_utils


class DistributionValidatorExecutor(distribution_validator_executor.Executor):
    """TFX's DistributionValidator executor, given its config as the proto even where it arrives as JSON text.

    LocalDagRunner hands a proto-typed execution property to the executor as a proto; TFX's Kubeflow V2 entrypoint
    (Kubeflow Pipelines and Vertex AI) hands every property as its JSON text, which TFX 1.16's executor takes for
    the proto ("'str' object has no attribute 'default_slice_config'"). Parsed here, both run the same comparison.
    """

    def Do(self, input_dict, output_dict, exec_properties):
        key = standard_component_specs.DISTRIBUTION_VALIDATOR_CONFIG_KEY
        config = exec_properties.get(key)
        if isinstance(config, str):
            parsed = proto_utils.json_to_proto(config, distribution_validator_pb2.DistributionValidatorConfig())
            exec_properties = {**exec_properties, key: parsed}
        return super().Do(input_dict, output_dict, exec_properties)


class DistributionValidator(distribution_validator_component.DistributionValidator):
    """TFX's DistributionValidator (same id, inputs and outputs) with the executor above."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(DistributionValidatorExecutor)
