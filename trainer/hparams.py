"""HParams: the one typed configuration of the Trainer, built by the CLI and passed in the Trainer's custom_config."""

import dataclasses

STRATEGIES = ("baseline", "class_weight", "oversample")


def _field(default, help: str):
    """A field whose help text (the CLI's --flag help) lives with it."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class HParams:
    """Trainer hyperparameters; the defaults are the tutorial's. Each field's meaning is its metadata's help."""

    units: int = _field(16, "width of the hidden layer")
    dropout: float = _field(0.5, "dropout rate after the hidden layer")
    learning_rate: float = _field(1e-3, "Adam learning rate")
    batch_size: int = _field(2048, "examples per training step")
    max_epochs: int = _field(100, "epochs at most (early stopping usually ends sooner)")
    patience: int = _field(10, "epochs without a better eval PR-AUC before stopping; the best weights are kept")
    strategy: str = _field(
        "baseline",
        "baseline: no reweighting (the default: with the threshold chosen on eval it ranks frauds best, see the "
        "model-quality page); class_weight: weigh each class to half the loss; oversample: balanced batches of the "
        "train split",
    )
    seed: int = _field(
        42, "random seed (weights, dropout, shuffling, sampling); the same seed and data give the same model"
    )
    layers: int = _field(1, "hidden layers, each --units wide with dropout after it")
    batch_norm: bool = _field(False, "batch normalisation after each hidden layer")
    time_of_day: bool = _field(False, "the time of day (sine and cosine of Time mod 24 h) as two more model inputs")
    ensemble: int = _field(1, "train this many members (seeds seed, seed+1, ...) and average their probabilities")

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("units", "batch_size", "max_epochs", "patience", "layers", "ensemble"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "HParams":
        # Configurations written before a field existed take its default.
        return cls(**values)


# What `fraud-pipeline compare` (and bench/quality.py) can put side by side: each name is a change to the run's
# hyperparameters. The imbalance strategies, then the model options that bench/quality.py measures.
MODEL_OPTIONS = {
    "time_of_day": {"time_of_day": True},
    "wide": {"units": 64},
    "deep": {"units": 64, "layers": 2},
    "batch_norm": {"units": 64, "batch_norm": True},
    "ensemble": {"ensemble": 3},
}
CANDIDATES = {**{s: {"strategy": s} for s in STRATEGIES}, **MODEL_OPTIONS}


THRESHOLD_POLICIES = ("precision", "cost", "fixed", "alerts")


@dataclasses.dataclass(frozen=True)
class ThresholdPolicy:
    """How the Trainer picks the operating threshold on the eval split (never on test).

    Attributes:
      kind: precision: the threshold with the most recall whose eval precision is at least min_precision, with
        confidence_z standard errors to spare (the Wilson score interval's lower end);
        cost: the threshold that minimises fn_cost * missed frauds + fp_cost * false alarms on eval;
        fixed: the given value, as the tutorial's 0.5;
        alerts: the lowest threshold whose alerts on eval stay within alerts_per_day for each day the eval split
        spans (the team's daily capacity to work alerts), i.e. the most recall the budget allows.
      min_precision: the precision target of kind 'precision'.
      fn_cost: what a missed fraud costs (kind 'cost').
      fp_cost: what a false alarm costs (kind 'cost').
      value: the threshold of kind 'fixed'.
      confidence_z: for kind 'precision', how many standard errors the eval precision must clear the target by: the
        lower end of its Wilson score interval at this z must reach min_precision. 0 takes the eval precision as
        it is; 1 (the default, about 84% one-sided confidence) is what bench/quality.py chose (docs/model-quality.md,
        "The operating threshold on later data").
    """

    kind: str = "precision"
    min_precision: float = 0.8
    fn_cost: float = 0.0
    fp_cost: float = 0.0
    value: float = 0.5
    confidence_z: float = 1.0
    alerts_per_day: float = 0.0

    def __post_init__(self):
        if self.kind not in THRESHOLD_POLICIES:
            raise ValueError(f"threshold policy must be one of {THRESHOLD_POLICIES}, got {self.kind!r}")
        if not 0.0 < self.min_precision <= 1.0:
            raise ValueError(f"min_precision must be in (0, 1], got {self.min_precision}")
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.value}")
        if self.fn_cost < 0 or self.fp_cost < 0:
            raise ValueError(f"costs must be >= 0, got fn_cost {self.fn_cost} and fp_cost {self.fp_cost}")
        if self.kind == "cost" and (self.fn_cost == 0 or self.fp_cost == 0):
            raise ValueError("the cost policy needs both a positive --fn-cost and a positive --fp-cost")
        if not 0.0 <= self.confidence_z <= 5.0:
            raise ValueError(f"confidence_z must be in [0, 5], got {self.confidence_z}")
        if self.alerts_per_day < 0 or (self.kind == "alerts" and self.alerts_per_day <= 0):
            raise ValueError(f"alerts per day must be positive, got {self.alerts_per_day:g}")

    def describe(self) -> str:
        if self.kind == "precision":
            if self.confidence_z == 0:
                return f"most recall with eval precision >= {self.min_precision:g}"
            return (
                f"most recall with eval precision >= {self.min_precision:g}, its Wilson lower bound at "
                f"z = {self.confidence_z:g}"
            )
        if self.kind == "cost":
            return f"least eval cost with a missed fraud at {self.fn_cost:g} and a false alarm at {self.fp_cost:g}"
        if self.kind == "alerts":
            return f"most eval recall with at most {self.alerts_per_day:g} alerts a day"
        return f"fixed at {self.value:g}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ThresholdPolicy":
        # Policies saved before confidence_z existed chose on the eval precision as it was.
        return cls(**{"confidence_z": 0.0, **values})
