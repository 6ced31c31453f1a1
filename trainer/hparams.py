"""HParams: the one typed configuration of the Trainer, built by the CLI and passed in the Trainer's custom_config."""

import dataclasses

STRATEGIES = ("baseline", "class_weight", "oversample")


@dataclasses.dataclass(frozen=True)
class HParams:
    """Trainer hyperparameters; the defaults are the tutorial's.

    Attributes:
      units: width of the hidden Dense layer.
      dropout: dropout rate after it.
      learning_rate: Adam's learning rate.
      batch_size: examples per training step.
      max_epochs: epochs at most; early stopping usually ends sooner.
      patience: epochs without a better validation PR-AUC before stopping (the best weights are restored).
      strategy: baseline (no reweighting), class_weight, or oversample (balanced batches).
      seed: seeds weights, dropout, shuffling and sampling; the same seed and data give the same model.
    """

    units: int = 16
    dropout: float = 0.5
    learning_rate: float = 1e-3
    batch_size: int = 2048
    max_epochs: int = 100
    patience: int = 10
    strategy: str = "class_weight"
    seed: int = 42

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("units", "batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "HParams":
        return cls(**values)
