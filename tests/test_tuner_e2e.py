"""`run --tune N`: TFX's Tuner searches on the eval split, and the Trainer trains the best trial's model."""

import pytest

from pipeline.definition import config as cfg
from tests.support import FIXTURE, report_path, run_cli, shared_run
from trainer import tuning

TRIALS = 2


@shared_run(scope="module")
def tuned_run(tmp_path_factory):
    result = run_cli(tmp_path_factory.mktemp("tuned"), "--data", str(FIXTURE), "--tune", str(TRIALS))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.e2e
def test_the_trainer_trains_the_best_trial_and_summary_records_the_search(tuned_run):
    summary = tuned_run.summary
    assert summary["components"][cfg.TUNER]["state"] == "COMPLETE"
    assert summary["tune_trials"] == TRIALS
    trials = summary["tuning"]["trials"]
    assert len(trials) == TRIALS
    best = summary["tuning"]["best"]
    assert set(best) == set(tuning.SEARCH_SPACE)
    for name, value in best.items():
        assert value in tuning.SEARCH_SPACE[name]
    best_trial = max(trials, key=lambda t: t["score"])
    assert {k: best_trial[k] for k in best} == best
    # The Trainer applied the best values on top of the run's flags, and (same seed, same data) reached exactly
    # the eval PR-AUC the best trial did.
    trained = summary["trainer"]["hparams"]
    assert {k: trained[k] for k in best} == best
    assert {k: v for k, v in trained.items() if k not in best} == {
        k: v for k, v in summary["hparams"].items() if k not in best
    }
    assert summary["trainer"]["best_val_prc"] == pytest.approx(best_trial["score"], abs=1e-9)
    assert summary["blessed"] and summary["pushed_model"]
    assert "tuned (2 trials, best eval PR-AUC" in tuned_run.stdout
    page = report_path(tuned_run).read_text()
    assert f"Chosen by the Tuner's search ({TRIALS} trials)" in page
    assert (
        f"{best['layers']} hidden layer(s) of {best['units']} units, dropout {best['dropout']}, "
        f"learning rate {best['learning_rate']}." in page
    )
    # KerasTuner's own progress and summaries go to the run's log, not to the CLI's stdout.
    assert "Trial" not in tuned_run.stdout and "Search space summary" not in tuned_run.stdout
