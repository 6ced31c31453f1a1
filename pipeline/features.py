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

# Transform outputs that are not model inputs: evaluation slices.
AMOUNT_BUCKET = "amount_bucket"
HOUR_BUCKET = "hour_bucket"
SLICE_FEATURES = (AMOUNT_BUCKET, HOUR_BUCKET)
# Amount bucket edges (in the data's currency) and their labels: fixed, so slices mean the same in every run.
AMOUNT_EDGES = (10.0, 50.0, 200.0, 1000.0)
AMOUNT_LABELS = ("0-10", "10-50", "50-200", "200-1000", "1000+")
# Time of day in 4-hour windows, counting from the first transaction (the data start at midnight).
HOURS_PER_BUCKET = 4
HOUR_LABELS = tuple(f"{h:02d}-{h + HOURS_PER_BUCKET:02d}h" for h in range(0, 24, HOURS_PER_BUCKET))
# Added to Amount before the log, so an amount of 0 stays finite.
AMOUNT_LOG_OFFSET = 0.001


def transformed_name(name: str) -> str:
    """The name Transform gives a model input."""
    return f"{name}_xf"


MODEL_INPUTS = tuple(transformed_name(n) for n in MODEL_FEATURES)
