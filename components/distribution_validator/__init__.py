"""DistributionValidator: TFX's drift and skew comparisons of two splits' statistics,
by the thresholds of drift.pbtxt."""
