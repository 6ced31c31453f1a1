"""The vanilla TFX peer's module file (bench/vanilla_tfx.py): preprocessing_fn and run_fn written as TFX's penguin
and taxi examples write them, for the same features and model as the pipeline's.

preprocessing_fn: Time dropped, log(Amount + 0.001), z-scores of the train split, clipped to [-5, 5], the label
passed through. run_fn: the transformed TFRecords read through `fn_args.data_accessor.tf_dataset_factory`, the
tutorial's model (Dense 16 relu, Dropout 0.5, sigmoid with the output bias from the class counts, Adam 1e-3, batch
2048), up to 100 epochs (a pass over the train split each) with early stopping on the eval PR-AUC (patience 10,
best weights restored), and a serving signature that parses raw tf.Examples and applies the Transform graph (tft_layer).
"""

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

LABEL = "Class"
FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]
BATCH_SIZE = 2048


def preprocessing_fn(inputs):
    outputs = {}
    for name in FEATURES:
        value = tf.cast(inputs[name], tf.float32)
        if name == "Amount":
            value = tf.math.log(value + 0.001)
        outputs[name + "_xf"] = tf.clip_by_value(tft.scale_to_z_score(value), -5.0, 5.0)
    outputs[LABEL] = inputs[LABEL]
    return outputs


def _dataset(files, data_accessor, tf_transform_output, batch_size, shuffle):
    return data_accessor.tf_dataset_factory(
        files,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL, shuffle=shuffle, num_epochs=1),
        tf_transform_output.transformed_metadata.schema,
    ).map(lambda features, label: (tf.concat([features[n + "_xf"] for n in FEATURES], axis=-1), label))


def _serve_fn(model, tf_transform_output):
    model.tft_layer = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve(serialized):
        spec = tf_transform_output.raw_feature_spec()
        spec.pop(LABEL)
        parsed = tf.io.parse_example(serialized, spec)
        transformed = model.tft_layer(parsed)
        return {"probability": model(tf.concat([transformed[n + "_xf"] for n in FEATURES], axis=-1))}

    return serve


def run_fn(fn_args: tfx.components.FnArgs):
    config = fn_args.custom_config
    keras.utils.set_random_seed(config.get("seed", 42))
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, BATCH_SIZE, True)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, BATCH_SIZE, False)
    pos, neg = float(config["train_frauds"]), float(config["train_rows"] - config["train_frauds"])
    model = keras.Sequential(
        [
            keras.layers.Dense(16, activation="relu", input_shape=(len(FEATURES),)),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(
                1, activation="sigmoid", bias_initializer=keras.initializers.Constant(np.log(pos / neg))
            ),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[
            keras.metrics.AUC(name="prc", curve="PR"),
            keras.metrics.AUC(name="auc"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
        ],
    )
    stop = keras.callbacks.EarlyStopping(monitor="val_prc", mode="max", patience=10, restore_best_weights=True)
    model.fit(
        train,
        epochs=100,
        validation_data=evaluation,
        callbacks=[stop],
        verbose=2,
    )
    model.save(
        fn_args.serving_model_dir,
        save_format="tf",
        signatures={"serving_default": _serve_fn(model, tf_transform_output)},
    )
