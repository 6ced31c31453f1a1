"""The serving folder TF Serving watches: its versions, which of them are complete, what each was trained from, and
which one is the Evaluator's baseline.

A pushed version carries its lineage (contract.LINEAGE): the fingerprint of the data it was trained on and of the
training configuration, whose hash is the model's *training identity*. Two models with the same identity were
trained from the same data, code and settings; a retrain gives the same weights up to float rounding, so it is the
same model. The baseline of a run is the newest complete version whose identity differs from the candidate's
(the model serving now, unless that is this very model), and the Pusher does not push a model that is already the
one serving.

No TensorFlow or TFX: the CLI reads local folders with it before a run, the Pusher and ServingBaseline call it at
run time on any file system (object stores through TensorFlow's gfile, imported only for a URI).
"""

import hashlib
import json
import os
from pathlib import Path

import contract

SAVED_MODEL_FILE = "saved_model.pb"
# TF Serving loads a version once saved_model.pb is there and reads the variables then: a version is complete when
# both are (the Pusher copies saved_model.pb last; a copy still in progress lacks one of them).
_COMPLETE_MARKERS = (SAVED_MODEL_FILE, os.path.join("variables", "variables.index"))
_HASH_CHUNK = 1 << 20


def _gfile():
    import tensorflow as tf  # only for object-store URIs (gs://, s3://)

    return tf.io.gfile


def _remote(path: str) -> bool:
    return "://" in path


def exists(path: str) -> bool:
    return _gfile().exists(path) if _remote(path) else os.path.exists(path)


def listdir(path: str) -> list[str]:
    if _remote(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)] if _gfile().exists(path) else []
    return os.listdir(path) if os.path.isdir(path) else []


def read_bytes(path: str) -> bytes:
    if _remote(path):
        with _gfile().GFile(path, "rb") as f:
            return f.read()
    return Path(path).read_bytes()


def join(base: str, *names: str) -> str:
    return "/".join([base.rstrip("/"), *names]) if _remote(base) else os.path.join(base, *names)


def versions(serving_dir: str) -> list[int]:
    """The numeric version folders under serving_dir, oldest first (complete or not)."""
    return sorted(int(name) for name in listdir(serving_dir) if name.isdigit())


def is_complete(version_dir: str) -> bool:
    """Can TF Serving load this version: are saved_model.pb and the variables index both there?"""
    return all(exists(join(version_dir, marker)) for marker in _COMPLETE_MARKERS)


def complete_versions(serving_dir: str) -> list[int]:
    """The versions TF Serving can load, oldest first."""
    return [v for v in versions(serving_dir) if is_complete(join(serving_dir, str(v)))]


def serving_now(serving_dir: str) -> tuple[int, str] | None:
    """(version, folder) of the version TF Serving serves (the newest complete one), or None."""
    found = complete_versions(serving_dir)
    return (found[-1], join(serving_dir, str(found[-1]))) if found else None


def read_lineage(version_dir: str) -> dict | None:
    """The lineage a pushed version carries, or None for a version pushed without one."""
    path = join(version_dir, contract.LINEAGE)
    if not exists(path):
        return None
    return json.loads(read_bytes(path))


def file_digest(path: str) -> str:
    """The sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    if _remote(path):
        with _gfile().GFile(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    else:
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def relative(path: str, base: str) -> str:
    """A data file's name relative to its input folder (as the lineage records it)."""
    base = base.rstrip("/") + "/"
    return path[len(base) :] if path.startswith(base) else path


def data_fingerprint(files: list[str], base: str) -> str:
    """A fingerprint of the data a run reads: each file's name relative to base and the hash of its bytes.

    Content, not modification times: the same files copied to another bucket or re-uploaded keep their fingerprint.
    """
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: relative(p, base)):
        digest.update(f"{relative(path, base)}\0{file_digest(path)}\n".encode())
    return digest.hexdigest()[:32]


def training_identity(data: str, training_config: str) -> str:
    """The identity of a model from its data fingerprint and training configuration (a JSON string)."""
    return hashlib.sha256(f"{data}\0{training_config}".encode()).hexdigest()[:32]


def identity_of(version_dir: str) -> str | None:
    """The training identity recorded in a pushed version, or None when it carries no lineage."""
    lineage = read_lineage(version_dir)
    return lineage.get("identity") if lineage else None


def choose_baseline(serving_dir: str, candidate_identity: str) -> tuple[int, str] | None:
    """The Evaluator's baseline for a candidate: the newest complete version that is not the candidate's own model.

    That is the model serving now, except when it is the candidate itself (a re-run on the same data, code and
    settings): comparing a model with itself proves nothing, so the version before it is taken, as on the run that
    pushed it. None on a first run.
    """
    for version in reversed(complete_versions(serving_dir)):
        folder = join(serving_dir, str(version))
        if identity_of(folder) != candidate_identity:
            return version, folder
    return None


def baseline_key(serving_dir: str, candidate_identity: str | None) -> str:
    """A short text that changes whenever the baseline choice for this candidate would change.

    Local runs put it into ServingBaseline's properties, so TFX re-runs that component (and what depends on it)
    exactly when the serving folder changed in a way that matters, and an unchanged re-run stays cached. Without a
    known identity it lists every complete version, which is correct too, only cached less often.
    """
    if candidate_identity is None:
        return "versions:" + ",".join(
            f"{v}={identity_of(join(serving_dir, str(v))) or '?'}" for v in complete_versions(serving_dir)
        )
    chosen = choose_baseline(serving_dir, candidate_identity)
    return f"version:{chosen[0]}={identity_of(chosen[1]) or '?'}" if chosen else "none"
