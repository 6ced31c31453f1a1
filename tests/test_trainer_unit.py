"""The imbalance techniques and the model, without a pipeline: bias, weights, oversampling, determinism."""

import dataclasses
import math

import numpy as np
import pytest
import tf_keras as keras

import contract
from compat import tensorflow as tensorflow_compat
from trainer import model as model_lib
from trainer import task
from trainer.hparams import HParams


def _data(n, fraud_rate, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_rate).astype(np.int64).reshape(-1, 1)
    # Frauds sit a little apart on the first few inputs, so there is something to learn.
    x = rng.normal(size=(n, len(contract.MODEL_INPUTS)))
    x[:, :4] += 1.5 * y
    return x.astype(np.float32), y


def test_initial_bias_and_class_weights_follow_the_formulas():
    assert model_lib.initial_bias(pos=417, neg=227428) == pytest.approx(math.log(417 / 227428))
    weights = model_lib.class_weights(pos=417, neg=227428)
    total = 417 + 227428
    assert weights == {0: pytest.approx(total / (2 * 227428)), 1: pytest.approx(total / (2 * 417))}
    # Each class then carries half of the total weight.
    assert weights[0] * 227428 == pytest.approx(weights[1] * 417) == pytest.approx(total / 2)
    with pytest.raises(ValueError, match="both classes"):
        model_lib.initial_bias(pos=0, neg=10)


def test_strategies_set_bias_weights_and_epoch_length():
    train_xy, eval_xy = _data(3000, 0.05, 1), _data(500, 0.05, 2)
    pos = int(train_xy[1].sum())
    neg = 3000 - pos
    for strategy in ("baseline", "class_weight", "oversample"):
        data = task.training_data(HParams(strategy=strategy, batch_size=256), train_xy, eval_xy)
        assert (data.pos, data.neg) == (pos, neg)
        if strategy == "oversample":
            assert data.initial_bias == 0.0
            assert data.steps_per_epoch == math.ceil(2 * neg / 256)
        else:
            assert data.initial_bias == pytest.approx(math.log(pos / neg))
            assert data.steps_per_epoch is None
        assert data.class_weight == (model_lib.class_weights(pos, neg) if strategy == "class_weight" else None)
        if strategy != "oversample":
            # model.fit shuffles the in-memory train arrays itself each epoch.
            args = data.fit_args(256)
            assert args["x"] is train_xy[0] and args["y"] is train_xy[1] and args["shuffle"] is True


def test_oversampled_batches_are_balanced_and_eval_is_untouched():
    train_xy, eval_xy = _data(5000, 0.03, 3), _data(800, 0.03, 4)
    data = task.training_data(HParams(strategy="oversample", batch_size=1024), train_xy, eval_xy)
    batches = list(data.train_stream.take(5).as_numpy_iterator())
    labels = np.concatenate([y for _, y in batches])
    assert len(labels) == 5 * 1024
    assert 0.45 < labels.mean() < 0.55
    # Each gathered row is a real train row with its own label: look every drawn row up by its inputs.
    x, y = train_xy
    row_label = {tuple(r): int(v) for r, v in zip(x, y.ravel())}
    for inputs, batch_labels in batches:
        assert [row_label[tuple(r)] for r in inputs] == batch_labels.ravel().tolist()
    # The eval split comes through as it is, and model.fit gets it unshuffled.
    args = data.fit_args(1024)
    assert args["validation_data"] is eval_xy
    assert args["x"] is data.train_stream and args["steps_per_epoch"] == data.steps_per_epoch


def test_oversampling_is_seeded():
    train_xy = _data(2000, 0.05, 5)

    def first_batch(seed):
        batch = next(model_lib.oversampled_dataset(*train_xy, batch_size=64, seed=seed).as_numpy_iterator())
        return batch[1].ravel()

    np.testing.assert_array_equal(first_batch(7), first_batch(7))


def test_zeroed_hidden_layer_gives_sigmoid_of_the_bias():
    bias = model_lib.initial_bias(pos=10, neg=990)
    model = model_lib.build_model(HParams(), bias)
    hidden = model.get_layer("hidden")
    hidden.set_weights([np.zeros_like(w) for w in hidden.get_weights()])
    x, _ = _data(50, 0.5, 6)
    predictions = model.predict(x, verbose=0).ravel()
    np.testing.assert_allclose(predictions, 1 / (1 + math.exp(-bias)), rtol=1e-6)


def test_autograph_leaves_keras_code_as_written_and_converts_ours():
    """The first fit of a process does not transpile tf_keras's train, test and metric code (about 30 s a Trainer,
    compat.tensorflow.keras_runs_as_written); the project's own functions are still AutoGraph's to convert."""
    from tensorflow.python.autograph.core import config as autograph_config
    from tensorflow.python.autograph.impl import conversion

    model_lib.build_model(HParams(), 0.0)
    tensorflow_compat.keras_runs_as_written()
    assert conversion.is_allowlisted(keras.Model.train_step)
    assert conversion.is_allowlisted(keras.metrics.AUC.update_state)
    assert not conversion.is_allowlisted(model_lib.stacked)
    assert sum("tf_keras" in str(rule) for rule in autograph_config.CONVERSION_RULES) == 1


@pytest.mark.slow
def test_same_seed_and_data_give_the_same_model():
    train_xy, eval_xy = _data(1000, 0.05, 8), _data(300, 0.05, 9)
    hparams = HParams(max_epochs=2, batch_size=256, patience=10)
    (model_a, facts_a), (model_b, facts_b) = (task.train(hparams, train_xy, eval_xy) for _ in range(2))
    assert facts_a["history"] == facts_b["history"]
    np.testing.assert_array_equal(model_a.predict(eval_xy[0], verbose=0), model_b.predict(eval_xy[0], verbose=0))
    assert set(facts_a["history"]) >= {
        f"{prefix}{m}"
        for prefix in ("", "val_")
        for m in ("loss", "tp", "fp", "tn", "fn", "precision", "recall", "auc", "prc")
    }


def test_rows_are_put_in_one_order_whatever_order_they_arrive_in():
    x, y = _data(500, 0.1, 10)
    permutation = np.random.default_rng(11).permutation(500)
    (x1, y1), (x2, y2) = task.canonical_order(x, y), task.canonical_order(x[permutation], y[permutation])
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(x1, x2)
    assert sorted(map(tuple, x)) == list(map(tuple, x1))


def test_model_options_shape_the_network_and_its_inputs():
    assert model_lib.model_inputs(HParams()) == contract.MODEL_INPUTS
    assert model_lib.model_inputs(HParams(time_of_day=True)) == contract.MODEL_INPUTS + contract.TIME_OF_DAY_INPUTS
    model = model_lib.build_model(HParams(units=8, layers=2, batch_norm=True, time_of_day=True), 0.0)
    assert model.input_shape == (None, len(contract.MODEL_INPUTS) + 2)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["Dense", "BatchNormalization", "Dropout"] * 2 + ["Dense"]
    assert [model.get_layer(n).units for n in ("hidden", "hidden_2")] == [8, 8]
    with pytest.raises(ValueError, match="layers"):
        HParams(layers=0)


@pytest.mark.slow
def test_an_ensemble_averages_members_trained_with_consecutive_seeds():
    train_xy, eval_xy = _data(1000, 0.05, 12), _data(300, 0.05, 13)
    hparams = HParams(max_epochs=1, batch_size=256, seed=7)
    ensemble, facts = task.train(dataclasses.replace(hparams, ensemble=2), train_xy, eval_xy)
    members = [layer for layer in ensemble.layers if isinstance(layer, keras.Model)]
    predicted = [m.predict(eval_xy[0], verbose=0) for m in members]
    assert len(members) == 2 and not np.array_equal(*predicted)
    np.testing.assert_allclose(
        ensemble.predict(eval_xy[0], verbose=0), np.mean(predicted, axis=0), rtol=1e-5, atol=1e-7
    )
    # The second member is the model seed 8 trains alone: the members' seeds are 7 and 8, not 8 and 9 or 7 and 9.
    alone = task.train(dataclasses.replace(hparams, seed=8), train_xy, eval_xy)[0]
    np.testing.assert_array_equal(alone.predict(eval_xy[0], verbose=0), predicted[1])
    assert [m["seed"] for m in facts["members"]] == [7, 8]
    assert facts["epochs_run"] == sum(m["epochs_run"] for m in facts["members"])


@pytest.mark.parametrize("seed", range(6))
def test_the_lexicographic_order_is_numpys_lexsort(seed):
    """Ties on the first keys (few distinct values), NaNs, 0.0 and -0.0, whole rows repeated, an integer last key:
    the order is np.lexsort's, index for index."""
    rng = np.random.default_rng(seed)
    n = 3000
    keys = [rng.choice(np.array([0.0, -0.0, 1.5, np.nan, 2.0], np.float32), n)]
    keys.append(rng.integers(0, 3 + seed, n).astype(np.float32))
    keys.append(rng.normal(size=n).astype(np.float32))
    keys[2][rng.random(n) < 0.5] = np.nan
    keys.append(rng.integers(0, 2, n))
    repeated = rng.integers(0, n, n // 10)
    for key in keys:
        key[repeated] = key[0]
    np.testing.assert_array_equal(task.lexicographic_order(keys), np.lexsort(keys[::-1]))
    assert task.lexicographic_order(keys[:1]).tolist() == np.lexsort(keys[:1]).tolist()
    # A measurement first, with a few NaNs, zeros of both signs and repeated rows tied on it: the same.
    first = rng.normal(size=n).astype(np.float32)
    first[rng.random(n) < 0.05] = np.nan
    first[rng.random(n) < 0.03] = 0.0
    first[rng.random(n) < 0.03] = -0.0
    measured = [first, *keys]
    np.testing.assert_array_equal(task.lexicographic_order(measured), np.lexsort(measured[::-1]))
