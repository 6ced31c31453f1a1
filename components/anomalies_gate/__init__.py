"""AnomaliesGate: stops the run before Transform on schema anomalies, too few frauds,
or drift and skew past their thresholds."""
