"""The feature contract: the one place that names raw and transformed features, the label and the splits."""

TIME = "Time"
AMOUNT = "Amount"
LABEL = "Class"
V_FEATURES = tuple(f"V{i}" for i in range(1, 29))

# Every raw input column except the label: 30 required floats.
RAW_FLOAT_FEATURES = (TIME, *V_FEATURES, AMOUNT)
RAW_COLUMNS = (*RAW_FLOAT_FEATURES, LABEL)

# Time is dropped from the model inputs (it only orders the splits and feeds a slice).
MODEL_FEATURES = (*V_FEATURES, AMOUNT)

# Model inputs are z-scores clipped to [-CLIP, CLIP].
CLIP = 5.0

# Output splits and their shares (hash buckets for the random scheme, quantiles of Time for the time scheme).
SPLIT_BUCKETS = {"train": 16, "eval": 4, "test": 5}
SPLITS = tuple(SPLIT_BUCKETS)
SPLIT_SCHEMES = ("time", "random")
