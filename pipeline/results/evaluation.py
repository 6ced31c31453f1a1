"""The Evaluator's results read back: TFMA metrics per slice and model, and TFMA's own validation (the blessing)."""

from components.lib.tfma_results import BASELINE, CANDIDATE, CHANGE_KIND, read_metrics, read_validation
from components.serving_baseline.component import FOUND, SERVING_PATH, SERVING_VERSION
from pipeline.definition import eval_config as ec
from pipeline.definition.gates import GateConfig
from pipeline.results.metadata import NodeRun, int_property, str_property


def gate_results(gates: GateConfig, overall: dict, baseline: dict | None, failures: list) -> list:
    """One row per gate with TFMA's outcome: 'fail' where TFMA recorded a failure, else 'pass'; a change gate
    without a baseline (the first run) is 'not applied', as TFMA skips it."""
    failed = {(f["metric"], f["kind"]) for f in failures if f["slice"] == "overall"}
    rows = []
    for metric, floor, _drop in ec.GATED:
        rows.append(
            {
                "metric": metric,
                "kind": "value",
                "gate": floor,
                "threshold": getattr(gates, floor),
                "value": overall.get(metric),
                "baseline_value": None,
                "result": "fail" if (metric, "value") in failed else "pass",
            }
        )
    for metric, _floor, drop in ec.GATED:
        applied = baseline is not None and metric in baseline
        rows.append(
            {
                "metric": metric,
                "kind": CHANGE_KIND,
                "gate": drop,
                "threshold": getattr(gates, drop),
                "value": overall.get(metric),
                "baseline_value": baseline.get(metric) if applied else None,
                "result": ("fail" if (metric, CHANGE_KIND) in failed else "pass") if applied else "not applied",
            }
        )
    return rows


def evaluation_summary(evaluator: NodeRun, gates: GateConfig) -> dict:
    """The test metrics overall and per slice, TFMA's verdict per gate, the blessing, and the baseline."""
    uri = evaluator.output_uri("evaluation")
    metrics = read_metrics(uri)
    blessing = evaluator.outputs["blessing"][0]
    given = evaluator.inputs.get("baseline_model") or []
    # ServingBaseline's output is there on every run; it holds a model only when a version was serving.
    baseline = given if given and int_property(given[0], FOUND) == 1 else None
    candidate = {name: per_model.get(CANDIDATE, {}) for name, per_model in metrics.items()}
    overall = candidate.get("overall", {})
    baseline_overall = metrics.get("overall", {}).get(BASELINE, {}) if baseline else None
    validation_ok, failures = read_validation(uri, metrics)
    return {
        "split": "test",
        "gates": gates.to_dict(),
        "overall": overall,
        "slices": {name: values for name, values in sorted(candidate.items()) if name != "overall"},
        "blessed": int_property(blessing, "blessed") == 1,
        "validation_ok": validation_ok,
        "gate_results": gate_results(gates, overall, baseline_overall, failures),
        "not_blessed_reasons": failures,
        "baseline": (
            {
                "model_uri": baseline[0].uri,
                "serving_version": str_property(baseline[0], SERVING_VERSION),
                "serving_path": str_property(baseline[0], SERVING_PATH),
                "overall": baseline_overall,
            }
            if baseline
            else None
        ),
        "evaluation_uri": uri,
    }
