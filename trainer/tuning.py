"""Hyperparameter search with KerasTuner on the eval split's PR-AUC: what TFX's Tuner component runs (tuner_fn).

Each trial is the Trainer's own training (trainer.task.train: the run's strategy, seed, early stopping on eval PR-AUC
with the best weights restored), scored by the best eval PR-AUC it reached. The Tuner writes the best values as
KerasTuner's HyperParameters config; the Trainer applies them to its HParams (`tuned`), so the pushed model is
trained exactly as the best trial was.

KerasTuner 1.4 builds Keras 3 models, and the pipeline's model is Keras 2 (tf_keras): the tuner here overrides
run_trial, so KerasTuner only proposes values and keeps score; it never builds or fits a model itself.
"""

import dataclasses
import logging
from collections.abc import Callable

from trainer.hparams import HParams

# The search space: HParams fields and the values a trial may take. The tutorial's (the default's) values are
# among them, so the search can keep the default.
SEARCH_SPACE: dict[str, tuple] = {
    "units": (16, 32, 64, 128),
    "layers": (1, 2),
    "dropout": (0.2, 0.35, 0.5),
    "learning_rate": (3e-4, 1e-3, 3e-3),
}
OBJECTIVE = "val_prc"


def tuned(hparams: HParams, values: dict) -> HParams:
    """hparams with the searched fields of values (KerasTuner's HyperParameters.values) applied."""
    return dataclasses.replace(hparams, **{name: values[name] for name in SEARCH_SPACE if name in values})


def best_values(config: dict | None) -> dict:
    """The values of a KerasTuner HyperParameters config (the Tuner's best_hyperparameters file); {} for none."""
    return dict(config.get("values", {})) if config else {}


def make_tuner(train: Callable, hparams: HParams, train_xy, eval_xy, directory: str, max_trials: int):
    """A seeded random search over SEARCH_SPACE whose trials are `train` on these splits.

    Args:
      train: the Trainer's training, trainer.task.train: (hparams, train_xy, eval_xy) -> (model, facts with
        best_val_prc).
      hparams: the run's hyperparameters; a trial changes only the searched fields.
      train_xy: (inputs, labels) of the train split, in canonical order.
      eval_xy: (inputs, labels) of the eval split.
      directory: where KerasTuner keeps its trials.
      max_trials: trials at most (fewer when the space is smaller).

    Returns:
      A KerasTuner tuner; search it with verbose=0 to keep KerasTuner's progress off stdout.
    """
    import keras_tuner as kt

    space = kt.HyperParameters()
    for name, choices in SEARCH_SPACE.items():
        space.Choice(name, list(choices), default=getattr(HParams(), name))

    class Search(kt.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            _, facts = train(tuned(hparams, trial.hyperparameters.values), train_xy, eval_xy)
            logging.info(
                "trial %s: %s, best eval PR-AUC %.4f",
                trial.trial_id,
                trial.hyperparameters.values,
                facts["best_val_prc"],
            )
            return {OBJECTIVE: facts["best_val_prc"]}

        # KerasTuner prints these summaries; TFX's Tuner asks for both. A run's stdout is the CLI's, so they go
        # to the run's log instead.
        def search_space_summary(self, extended=False):
            logging.info("search space: %s", SEARCH_SPACE)

        def results_summary(self, num_trials=10):
            for t in self.oracle.get_best_trials(num_trials):
                logging.info("trial %s: score %s, %s", t.trial_id, t.score, t.hyperparameters.values)

    return Search(
        hyperparameters=space,
        tune_new_entries=False,
        objective=kt.Objective(OBJECTIVE, direction="max"),
        max_trials=max_trials,
        seed=hparams.seed,
        directory=directory,
        project_name="search",
        overwrite=True,
    )
