"""Trainer: the Keras model and the run_fn that the TFX Trainer component loads by dotted path."""
