"""DistributionValidator: TFX's drift and skew comparisons of two splits' statistics,
by the thresholds of the dataset spec's drift section."""
