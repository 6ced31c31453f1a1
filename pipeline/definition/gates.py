"""GateConfig: the blessing gate's thresholds (light: no TensorFlow), and how a failed gate is told."""

import dataclasses

from components.lib.rejection import DEFAULT_MIN_FRAUDS


def _field(default, help: str):
    """A field whose help text (the CLI's --flag help) lives with it."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class GateConfig:
    """The Evaluator's thresholds; a model is blessed only when it meets all of them (help: each field's metadata).

    The decision threshold behind TP, FP, TN, FN, precision and recall is not a gate: each model carries its own
    operating threshold, chosen on the eval split (trainer.hparams.ThresholdPolicy). The two change gates sit above
    retrain noise, as measured by bench/quality.py (docs/model-quality.md, "The blessing gates and retrain noise").
    """

    min_pr_auc: float = _field(0.5, "bless only if the test PR-AUC is at least this")
    at_precision: float = _field(0.8, "the precision at which recall_at_precision is measured")
    min_recall_at_precision: float = _field(0.4, "bless only if recall at that precision is at least this")
    max_pr_auc_drop: float = _field(
        0.04, "bless only if PR-AUC is at most this much below the baseline's (the model serving now)"
    )
    max_recall_drop: float = _field(0.05, "bless only if recall_at_precision is at most this much below the baseline's")

    def __post_init__(self):
        for name in ("min_pr_auc", "at_precision", "min_recall_at_precision"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("max_pr_auc_drop", "max_recall_drop"):
            if getattr(self, name) < 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class DataMinimums:
    """The fewest frauds each split must hold for the run to go on to Transform (AnomaliesGate checks them).

    A split with fewer stops the run with exit code 3 before anything is trained: the Trainer needs frauds to
    learn from (train) and to stop early and choose the operating threshold on (eval), the Evaluator to measure
    (test).
    """

    min_train_frauds: int = _field(
        DEFAULT_MIN_FRAUDS["train"], "stop before Transform (exit 3) when the train split holds fewer frauds"
    )
    min_eval_frauds: int = _field(
        DEFAULT_MIN_FRAUDS["eval"],
        "likewise for the eval split (early stopping and the operating threshold need frauds)",
    )
    min_test_frauds: int = _field(
        DEFAULT_MIN_FRAUDS["test"], "likewise for the test split (the Evaluator needs frauds to measure)"
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if getattr(self, field.name) < 1:
                raise ValueError(f"{field.name} must be at least 1, got {getattr(self, field.name)}")

    def per_split(self) -> dict[str, int]:
        return {"train": self.min_train_frauds, "eval": self.min_eval_frauds, "test": self.min_test_frauds}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def describe_failure(failure: dict) -> str:
    """One line: which metric failed, its value, the threshold and the baseline."""
    if failure["difference"] is not None:
        return (
            f"{failure['metric']} {failure['value']:.4f} is {-failure['difference']:.4f} below the serving "
            f"model's {failure['baseline_value']:.4f} (allowed drop {-failure['threshold']:.4f})"
        )
    return f"{failure['metric']} {failure['value']:.4f} is below the floor {failure['threshold']:.4f}"
