"""TensorFlow's AutoGraph: a rule that leaves tf_keras's own code as written, as TensorFlow's rules leave keras's.

Replaces: `tensorflow.python.autograph.core.config.CONVERSION_RULES` (a private module's table), with one rule more
in front: `DoNotConvert("tf_keras")`.
Why: TensorFlow 2.16's AutoGraph does not convert modules named keras.* but has no rule for tf_keras.*, the same
Keras 2 code under its new name, so the first model.fit of every process transpiled Keras's train, test and metric
functions: tens of seconds in each Trainer, Tuner and test that trains (docs/benchmarks.md). The graphs traced are
the ones Keras 2 always ran unconverted.
Compared with TensorFlow's own path by: tests/test_trainer_unit.py (a model fitted with and without the rule: the
same weights) and tests/test_compat_unit.py (the fallback leaves the table alone).
"""

import compat

DISTRIBUTIONS = ("tensorflow",)


def keras_runs_as_written() -> None:
    """Adds the rule (idempotent); a TensorFlow of another version keeps its own rules."""
    if not compat.supported("tensorflow", *DISTRIBUTIONS):
        return
    from tensorflow.python.autograph.core import config as autograph_config

    rule = autograph_config.DoNotConvert("tf_keras")
    if all(str(r) != str(rule) for r in autograph_config.CONVERSION_RULES):
        autograph_config.CONVERSION_RULES = (rule, *autograph_config.CONVERSION_RULES)
