"""The hyperparameter search without a pipeline: the space, how best values reach HParams, trials as the Trainer."""

import dataclasses
import json
import subprocess

import numpy as np
import pytest

import contract
from pipeline.definition import config as cfg
from tests.support import CLI, FIXTURE, compile_spec
from trainer import task, tuning
from trainer.hparams import HParams


def _data(n, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.08).astype(np.int64).reshape(-1, 1)
    x = rng.normal(size=(n, len(contract.MODEL_INPUTS)))
    x[:, :3] += 1.2 * y
    return x.astype(np.float32), y


def test_tuned_applies_only_the_searched_fields():
    hparams = HParams(strategy="class_weight", seed=7, patience=3)
    values = {"units": 64, "layers": 2, "dropout": 0.2, "learning_rate": 3e-3, "not_a_field": 1}
    out = tuning.tuned(hparams, values)
    assert (out.units, out.layers, out.dropout, out.learning_rate) == (64, 2, 0.2, 3e-3)
    assert (out.strategy, out.seed, out.patience) == ("class_weight", 7, 3)
    assert tuning.tuned(hparams, {}) == hparams
    assert tuning.best_values(None) == {} and tuning.best_values({"space": [], "values": {"units": 32}}) == {
        "units": 32
    }


def test_search_space_holds_the_default_model_and_only_hparams_fields():
    fields = {f.name for f in dataclasses.fields(HParams)}
    assert set(tuning.SEARCH_SPACE) <= fields
    for name, choices in tuning.SEARCH_SPACE.items():
        assert getattr(HParams(), name) in choices, name


@pytest.mark.slow
def test_search_keeps_the_best_trial_and_a_trial_is_the_trainers_training(tmp_path):
    train_xy, eval_xy = _data(1500, 1), _data(500, 2)
    hparams = HParams(max_epochs=2, patience=2, batch_size=256)
    tuner = tuning.make_tuner(task.train, hparams, train_xy, eval_xy, str(tmp_path / "a"), max_trials=2)
    tuner.search(verbose=0)
    trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
    assert len(trials) == 2
    best = tuner.get_best_hyperparameters()[0].values
    best_trial = max(trials, key=lambda t: t.score)
    assert best == best_trial.hyperparameters.values
    assert set(best) == set(tuning.SEARCH_SPACE)
    # The Trainer with the best values trains the same model the trial did: the same best eval PR-AUC.
    _, facts = task.train(tuning.tuned(hparams, best), train_xy, eval_xy)
    assert facts["best_val_prc"] == pytest.approx(best_trial.score, abs=1e-9)

    # The same seed proposes the same trials. A random search's proposals do not depend on the scores, so the
    # second search scores its trials without training them.
    def scored_only(trial_hparams, *_):
        return None, {"best_val_prc": 0.5}

    again = tuning.make_tuner(scored_only, hparams, train_xy, eval_xy, str(tmp_path / "b"), max_trials=2)
    again.search(verbose=0)
    assert sorted(str(t.hyperparameters.values) for t in again.oracle.trials.values()) == sorted(
        str(t.hyperparameters.values) for t in trials
    )


def test_tune_is_refused_where_it_cannot_apply(tmp_path):
    for args, message in (
        (["run", "--tune", "-1"], "--tune -1"),
        (["compare", "--strategies", "baseline,wide", "--tune", "2"], "--tune searches for one run"),
    ):
        proc = subprocess.run(
            [str(CLI), *args, "--data", str(FIXTURE), "--output", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "out" / "metadata.sqlite").exists()


def test_compiled_pipeline_feeds_the_tuners_best_values_to_the_trainer(tmp_path):
    spec = json.loads(compile_spec(tmp_path / "tuned.json", "vertex", "--tune", "3").read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    assert cfg.TUNER in tasks
    trainer_inputs = tasks[cfg.TRAINER]["inputs"]["artifacts"]
    assert trainer_inputs["hyperparameters"]["taskOutputArtifact"] == {
        "outputArtifactKey": "best_hyperparameters",
        "producerTask": cfg.TUNER,
    }
