"""The serving folder TF Serving watches: its versions, which of them are complete, what each was trained from, and
which one is the Evaluator's baseline.

A little over the size of a module, on purpose: versions, manifests, locks and rollback share invariants (a version
appears complete or not at all, a rollback and a push exclude each other) that are easier to keep in one file.

A pushed version carries its lineage (contract.LINEAGE): the fingerprint of the data it was trained on and of the
training configuration, whose hash is the model's *training identity*. Two models with the same identity were
trained from the same data, code and settings; a retrain gives the same weights up to float rounding, so it is the
same model. The baseline of a run is the newest complete version whose identity differs from the candidate's
(the model serving now, unless that is this very model), and the Pusher does not push a model that is already the
one serving.

No TensorFlow or TFX: the CLI reads local folders with it before a run, the Pusher and ServingBaseline call it at
run time on any file system (object stores through TensorFlow's gfile, imported only for a URI).
"""

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import contract
from datasets import spec as dataset_spec
from datasets.spec import DatasetSpec

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


def stray_names(serving_dir: str) -> list[str]:
    """Names under serving_dir that str.isdigit() takes for numbers but TF Serving does not ('²'): ignored."""
    return sorted(n for n in listdir(serving_dir) if n.isdigit() and not contract.is_version(n))


def versions(serving_dir: str) -> list[int]:
    """The numeric version folders under serving_dir (ASCII digits only), oldest first (complete or not)."""
    return sorted(int(name) for name in listdir(serving_dir) if contract.is_version(name))


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


def dataset_of_model(model_dir: str) -> DatasetSpec:
    """The dataset spec a model (a Trainer's Model artifact, its Format-Serving folder, or a pushed version) was
    trained by (contract.DATASET_SPEC); the default spec for a model from before specs travelled with models."""
    for folder in (os.path.join(model_dir, contract.SERVING_MODEL_DIR), model_dir):
        path = os.path.join(folder, contract.DATASET_SPEC)
        if exists(path):
            return dataset_spec.from_json(read_bytes(path).decode())
    return contract.DEFAULT_DATASET


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


class UnverifiedVersionError(Exception):
    """A pushed version whose files are not those its manifest lists (or that has no manifest); the message names
    the version and the file."""


def _files(folder: str) -> list[str]:
    """Every file under folder, as paths relative to it with '/' (sorted)."""
    found = []
    if _remote(folder):
        for root, _, names in _gfile().walk(folder):
            found += [f"{root.rstrip('/')}/{n}"[len(folder.rstrip("/")) + 1 :] for n in names]
    else:
        for root, _, names in os.walk(folder):
            found += [os.path.relpath(os.path.join(root, n), folder).replace(os.sep, "/") for n in names]
    return sorted(found)


def manifest_of(folder: str, more: dict[str, str] | None = None) -> dict:
    """The manifest of a version folder: every file's SHA-256 (`more`: files still to come, name -> digest)."""
    names = [n for n in _files(folder) if n != contract.MANIFEST.replace(os.sep, "/")]
    files = {n: file_digest(join(folder, *n.split("/"))) for n in names}
    files.update(more or {})
    return {"algorithm": "sha256", "files": dict(sorted(files.items()))}


def write_manifest(folder: str, more: dict[str, str] | None = None) -> None:
    """Writes the folder's manifest (manifest_of) into it (the Pusher flushes the whole version to disk after)."""
    text = json.dumps(manifest_of(folder, more), indent=1, sort_keys=True) + "\n"
    path = join(folder, contract.MANIFEST)
    if _remote(folder):
        _gfile().makedirs(os.path.dirname(path))
        with _gfile().GFile(path, "w") as f:
            f.write(text)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def verify(version_dir: str) -> None:
    """Checks a version's files against its manifest, as a registry checks a digest: the same files, the same bytes.

    Raises:
      UnverifiedVersionError: no manifest, or a file missing, added or changed, naming it.
    """
    path = join(version_dir, contract.MANIFEST)
    if not exists(path):
        raise UnverifiedVersionError(
            f"{version_dir} has no manifest ({contract.MANIFEST}): it was not pushed by this pipeline's Pusher, or was "
            "pushed before manifests were written, or the manifest was removed; push the model again, or check it "
            f"and seal it (fraud-pipeline verify --seal {os.path.basename(version_dir.rstrip('/'))})"
        )
    try:
        listed = json.loads(read_bytes(path))["files"]
    except (ValueError, KeyError, TypeError) as e:
        raise UnverifiedVersionError(f"{path} is not a manifest this pipeline wrote: {e}") from e
    found = manifest_of(version_dir)["files"]
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            problem = "is missing"
        elif name not in listed:
            problem = "is not in its manifest (added after the push)"
        elif found[name] != listed[name]:
            problem = "differs from what was pushed (its SHA-256 is not the manifest's)"
        else:
            continue
        raise UnverifiedVersionError(
            f"{join(version_dir, *name.split('/'))} {problem}: the version was changed after it was pushed; push it "
            "again, or roll back to a version that verifies"
        )


def fsync_tree(folder: str) -> None:
    """Flushes every file and folder under a local folder to disk (a pushed version is durable, not only atomic)."""
    for root, _, names in os.walk(folder):
        for name in names:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def fsync_path(path: str) -> None:
    """Flushes a local file, or a folder's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(serving_dir: str) -> Iterator[None]:
    """Holds the serving folder's lock for the block (flock on the folder itself: no file is added to what TF
    Serving watches): a push's rename and a rollback's moves exclude each other. Waits for the other to finish (a
    push's rename and a rollback take seconds). Nothing on an object store, which has no locks (there a rollback is
    refused anyway)."""
    if _remote(serving_dir):
        yield
        return
    os.makedirs(serving_dir, exist_ok=True)
    fd = os.open(serving_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


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


def examples_training_identity(examples, training_config: str) -> str:
    """The training identity of a candidate trained on an Examples artifact (its data fingerprint property)."""
    return training_identity(examples.get_string_custom_property(contract.DATA_FINGERPRINT_PROPERTY), training_config)


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
    """Every rollback done on this serving folder, oldest first (a line that is not a whole event is passed over:
    read_rollback_log names it)."""
    return read_rollback_log(serving_dir)[0]


def read_rollback_log(serving_dir: str) -> tuple[list[dict], list[str]]:
    """(every whole event of the rollback log, oldest first; a sentence for each line that is not one).

    A process killed while it appended leaves a torn last line; the events before it are whole and kept.
    """
    path = join(archive_dir(serving_dir), ROLLBACK_LOG)
    if not exists(path):
        return [], []
    events, problems = [], []
    for number, line in enumerate(read_bytes(path).decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as e:
            problems.append(f"{path} line {number} is not a whole rollback event ({e.msg}), passed over: {line[:80]!r}")
            continue
        if not isinstance(event, dict):
            problems.append(f"{path} line {number} is not a rollback event, passed over: {line[:80]!r}")
            continue
        events.append(event)
    return events, problems


INTENT = "rollback.intent.json"


def _append_log(serving_dir: str, event: dict) -> None:
    path = join(archive_dir(serving_dir), ROLLBACK_LOG)
    # After a torn last line (an append cut short), the new event starts a line of its own.
    torn = os.path.exists(path) and os.path.getsize(path) > 0 and not read_bytes(path).endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if torn else "") + json.dumps(event, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _write_intent(serving_dir: str, event: dict) -> None:
    path = join(archive_dir(serving_dir), INTENT)
    with open(path + ".tmp", "w") as f:
        json.dump(event, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    fsync_path(archive_dir(serving_dir))


def _finish(serving_dir: str, event: dict, pause=None) -> dict:
    """Moves aside every version the event archives that is still visible, newest first, then logs the event and
    removes the intent. Safe to run again after an interruption at any point."""
    for version in sorted(event["archived"], reverse=True):
        source = join(serving_dir, str(version))
        if os.path.exists(source):
            os.rename(source, join(archive_dir(serving_dir), str(version)))
            if pause is not None:
                pause()
    fsync_path(serving_dir)
    fsync_path(archive_dir(serving_dir))
    now = serving_now(serving_dir)
    event = {**event, "serving_after": now[0] if now else None}
    _append_log(serving_dir, event)
    os.remove(join(archive_dir(serving_dir), INTENT))
    return event


def interrupted_rollback(serving_dir: str) -> dict | None:
    """The intent of a rollback that was stopped before it finished (its moves or its log line), or None."""
    path = join(archive_dir(serving_dir), INTENT)
    if _remote(serving_dir) or not os.path.exists(path):
        return None
    return json.loads(Path(path).read_text())


def rollback(serving_dir: str, to: int, reason: str, user: str, now: str, pause=None) -> dict:
    """Makes version `to` the one TF Serving serves by moving every newer version aside (nothing is deleted).

    The intent (who, when, why, what moves) is written and flushed before the first move, and the log line after
    the last; under the serving folder's lock, so a push waits (locked()). A rollback stopped mid-way is finished by
    the next call, whatever version that call names: the returned event then says `resumed`.

    Args:
      to: a complete version under serving_dir, older than the one serving now, that verifies (verify()).
      reason, user, now: what the log records (why, who, when).
      pause: called between two moves (a test's hook to stop the process mid-way).

    Raises:
      RollbackError: a remote serving folder, or a version that is not there, not complete, or serving already.
      UnverifiedVersionError: the version's files are not those that were pushed.
    """
    if _remote(serving_dir):
        raise RollbackError(
            f"{serving_dir}: an object store cannot move a folder at once; pin the version in TF Serving's model "
            "config (model_version_policy { specific { versions: N } }) instead"
        )
    with locked(serving_dir):
        pending = interrupted_rollback(serving_dir)
        if pending is not None:
            return {**_finish(serving_dir, pending, pause), "resumed": True}
        now_serving = serving_now(serving_dir)
        folder = join(serving_dir, str(to))
        if to not in versions(serving_dir):
            kept = ", ".join(map(str, complete_versions(serving_dir))) or "none"
            raise RollbackError(f"version {to} is not in {serving_dir} (complete versions: {kept})")
        if not is_complete(folder):
            raise RollbackError(f"version {to} in {serving_dir} is not complete (no saved_model.pb or variables)")
        if now_serving is not None and now_serving[0] == to:
            raise RollbackError(f"version {to} is the one serving already")
        verify(folder)
        os.makedirs(archive_dir(serving_dir), exist_ok=True)
        event = {"at": now, "by": user, "to": to, "from": now_serving[0] if now_serving else None, "reason": reason}
        event["archived"] = [v for v in versions(serving_dir) if v > to]
        _write_intent(serving_dir, event)
        return _finish(serving_dir, event, pause)


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
