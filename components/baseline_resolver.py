"""A resolver strategy for the Evaluator's baseline: the latest blessed model other than this run's candidate.

TFX's LatestBlessedModelStrategy hands a re-run with nothing changed its own model as the baseline: the
Evaluator's inputs then differ from the first run's (which had no baseline), so the Evaluator re-runs to compare
the model with itself and the Pusher pushes the same model again. Leaving the candidate out makes an unchanged
re-run resolve exactly what the first run resolved, so every component comes from the cache.

Kubeflow V2 compiles only TFX's two stock strategies, so compiled pipelines use LatestBlessedModelStrategy.
"""

from tfx import v1 as tfx

# Custom properties the Evaluator sets on a ModelBlessing (TFX 1.16, tfx.components.evaluator.constants).
_BLESSED = "blessed"
_CURRENT_MODEL_ID = "current_model_id"

MODEL, MODEL_BLESSING, CANDIDATE = "model", "model_blessing", "candidate"


class LatestBlessedOtherModelStrategy(tfx.dsl.experimental.ResolverStrategy):
    """Resolves the newest blessed Model (and its ModelBlessing) that is not among the candidate channel's models.

    Inputs: MODEL (all models), MODEL_BLESSING (all blessings) and CANDIDATE (this run's Trainer output).
    """

    def resolve_artifacts(self, store, input_dict):
        del store  # everything needed is in the input channels
        candidates = {a.id for a in input_dict[CANDIDATE]}
        blessed = {
            b.get_int_custom_property(_CURRENT_MODEL_ID): b
            for b in input_dict[MODEL_BLESSING]
            if b.get_int_custom_property(_BLESSED) == 1
        }
        for model in sorted(input_dict[MODEL], key=lambda a: a.id, reverse=True):
            if model.id in blessed and model.id not in candidates:
                return {MODEL: [model], MODEL_BLESSING: [blessed[model.id]], CANDIDATE: input_dict[CANDIDATE]}
        return {MODEL: [], MODEL_BLESSING: [], CANDIDATE: input_dict[CANDIDATE]}
