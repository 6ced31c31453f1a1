"""Transform: the preprocessing_fn that the TFX Transform component loads by dotted path."""
