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
    key = f"version:{chosen[0]}={identity_of(chosen[1]) or '?'}" if chosen else "none"
    # A rollback of this very model changes what the Pusher must do with it (not push it again): re-run then too.
    refused = rolled_back_identity(serving_dir, candidate_identity) if not _remote(serving_dir) else None
    return key + (f";rolled-back:{refused[0]}" if refused else "")


# Rollback: newer versions are moved aside into this hidden folder of the serving folder (TF Serving watches only
# numeric names), newest first, one rename each, so at every moment the newest visible version is a complete one.
ARCHIVE = ".rolled-back"
ROLLBACK_LOG = "rollbacks.jsonl"


class RollbackError(ValueError):
    """A rollback that cannot be done; the message says why."""


def archive_dir(serving_dir: str) -> str:
    return join(serving_dir, ARCHIVE)


def rolled_back(serving_dir: str) -> list[tuple[int, str]]:
    """(version, folder) of every version moved aside by a rollback, oldest first."""
    archive = archive_dir(serving_dir)
    return [(v, join(archive, str(v))) for v in versions(archive)]


def rollback_log(serving_dir: str) -> list[dict]:
    """Every rollback done on this serving folder, oldest first."""
    path = join(archive_dir(serving_dir), ROLLBACK_LOG)
    if not exists(path):
        return []
    return [json.loads(line) for line in read_bytes(path).decode().splitlines() if line.strip()]


def rollback(serving_dir: str, to: int, reason: str, user: str, now: str, pause=None) -> dict:
    """Makes version `to` the one TF Serving serves by moving every newer version aside (nothing is deleted).

    Args:
      to: a complete version under serving_dir, older than the one serving now.
      reason, user, now: what the log records (why, who, when).
      pause: called between two moves (a test's hook to stop the process mid-way).

    Raises:
      RollbackError: a remote serving folder, or a version that is not there, not complete, or serving already.
    """
    if _remote(serving_dir):
        raise RollbackError(
            f"{serving_dir}: an object store cannot move a folder at once; pin the version in TF Serving's model "
            "config (model_version_policy { specific { versions: N } }) instead"
        )
    now_serving = serving_now(serving_dir)
    folder = join(serving_dir, str(to))
    if to not in versions(serving_dir):
        kept = ", ".join(map(str, complete_versions(serving_dir))) or "none"
        raise RollbackError(f"version {to} is not in {serving_dir} (complete versions: {kept})")
    if not is_complete(folder):
        raise RollbackError(f"version {to} in {serving_dir} is not complete (no saved_model.pb or variables)")
    if now_serving is not None and now_serving[0] == to:
        raise RollbackError(f"version {to} is the one serving already")
    newer = [v for v in versions(serving_dir) if v > to]
    os.makedirs(archive_dir(serving_dir), exist_ok=True)
    event = {"at": now, "by": user, "to": to, "from": now_serving[0] if now_serving else None, "reason": reason}
    event["archived"] = newer
    for version in reversed(newer):
        os.rename(join(serving_dir, str(version)), join(archive_dir(serving_dir), str(version)))
        if pause is not None:
            pause()
    with open(join(archive_dir(serving_dir), ROLLBACK_LOG), "a") as f:
        f.write(json.dumps(event, sort_keys=True) + "\n")
    return event


def previous_version(serving_dir: str) -> int:
    """The complete version before the one serving now (what `rollback --previous` goes back to)."""
    found = complete_versions(serving_dir)
    if len(found) < 2:
        raise RollbackError(f"{serving_dir} holds {len(found)} complete version(s): nothing to go back to")
    return found[-2]


def rolled_back_identity(serving_dir: str, identity: str) -> tuple[int, dict] | None:
    """(version, its rollback event) when a model of this training identity was rolled back, else None."""
    events = rollback_log(serving_dir)
    for version, folder in reversed(rolled_back(serving_dir)):
        if identity_of(folder) == identity:
            event = next((e for e in reversed(events) if version in e.get("archived", [])), {})
            return version, event
    return None
