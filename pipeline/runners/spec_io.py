"""Reading and writing compiled pipeline specs (JSON, or YAML by file name); no TFX needed."""

import json
import os

import yaml


def write_spec(spec: dict, path: str) -> None:
    """Writes the spec as YAML when the path ends in .yaml/.yml, else as JSON."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        if path.endswith((".yaml", ".yml")):
            yaml.safe_dump(spec, f, sort_keys=False)
        else:
            json.dump(spec, f, indent=2, sort_keys=True)
            f.write("\n")


def read_spec(path: str) -> dict:
    """Reads a spec written by write_spec (YAML is a superset of JSON)."""
    with open(path) as f:
        return yaml.safe_load(f)


def pipeline_spec(spec: dict) -> dict:
    """The PipelineSpec inside a Vertex PipelineJob file, or the file itself when it is a bare spec."""
    return spec.get("pipelineSpec", spec)
