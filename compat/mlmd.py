"""ML Metadata on PostgreSQL: string property values that hold a backslash stored without one, and the answers of
the ...ByID calls in id order, as SQLite gives them.

Replaces: `MetadataStore._call` (private), for a store connected to PostgreSQL only; SQLite and MySQL stores go
through MLMD's own method untouched.
Why: two things. The strings: MLMD 1.16 on PostgreSQL writes a string with libpq's PQescapeLiteral, which returns
a quoted literal (E'...' when the string holds a backslash), and then quotes it again: every string property value
with a backslash makes an invalid statement ("syntax error at or near ..."), and the publish of the execution fails. TFX
writes such values on every run: the Evaluator's eval_config holds each metric's config, JSON inside JSON
(`"config": "{\"name\": \"pr_auc\"}"`).
The order: TFX's cache (tfx/orchestration/portable/cache_utils.py, _get_outputs_of_execution) zips an
execution's output events with `get_artifacts_by_id` of their ids, trusting the artifacts to come back in the
events' order. On SQLite they come back by id, the order the events are written in; on PostgreSQL in the table's
physical order, which an update (an artifact marked LIVE after it is written) or another run writing at the same
time changes: a cached Trainer then handed its `model_run` folder as its `model`, and the Evaluator found no model.
How: `MetadataStore._call`, the one method every request goes through, is wrapped for a store connected to
PostgreSQL. In the request, each property Value's string holding a backslash (or the marker) is encoded, a
backslash as MARKER + "b" and the marker itself doubled, so no backslash reaches MLMD's escaping; in the response,
every string holding the marker is decoded. What the store holds reads back as it was written, through MLMD's
Python API; another client reading the database directly sees the marker where a backslash was. Values without a
backslash or the marker are untouched, so a store written before this reads the same. The artifacts, executions and
contexts a GetArtifactsByID, GetExecutionsByID or GetContextsByID call answers are put in id order.
And `tfx.orchestration.metadata.Metadata.__enter__`, for a PostgreSQL store: TFX opens a new MLMD connection each
time a handle is entered (docs/benchmarks.md, "The shared metadata store", counts them), each a server process, a
password exchange and MLMD's schema check. Here a process keeps one connection a store and enters
every handle on it (TFX's handle is not thread-safe either way, and LocalDagRunner enters it from one thread).
Compared with MLMD's own path by: tests/test_metadata_postgres_e2e.py (values with backslashes written and read
back through a real PostgreSQL server; whole runs published there, two at once, and a third reusing their cache)
and tests/test_compat_unit.py (the encoding undone exactly; MLMD's own method kept on another version).
"""

import functools
import re

import compat

DISTRIBUTIONS = ("ml-metadata",)
# U+2216 SET MINUS: a character a TFX property never holds, standing for the backslash in the store.
MARKER = "\u2216"
_DECODE = re.compile(MARKER + "(.)", re.S)
_INSTALLED = "_fraud_pipeline_postgres_strings"
# The calls whose answer SQLite gives in id order, and the field of the answer.
_BY_ID = {"GetArtifactsByID": "artifacts", "GetExecutionsByID": "executions", "GetContextsByID": "contexts"}


def encode(text: str) -> str:
    """A string without backslashes that decode() turns back into text."""
    if "\\" not in text and MARKER not in text:
        return text
    return text.replace(MARKER, MARKER + MARKER).replace("\\", MARKER + "b")


def decode(text: str) -> str:
    if MARKER not in text:
        return text
    return _DECODE.sub(lambda m: MARKER if m.group(1) == MARKER else "\\", text)


def _walk(message, convert, value_type=None) -> None:
    """Every property Value's string_value in a message, converted in place."""
    if value_type is None:
        from ml_metadata.proto import metadata_store_pb2

        value_type = metadata_store_pb2.Value
    if isinstance(message, value_type):
        if message.WhichOneof("value") == "string_value":
            converted = convert(message.string_value)
            if converted != message.string_value:
                message.string_value = converted
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            entries = value.values()
        elif field.label == field.LABEL_REPEATED:
            entries = value
        else:
            entries = [value]
        for entry in entries:
            if hasattr(entry, "ListFields"):
                _walk(entry, convert, value_type)


# One MLMD connection a PostgreSQL store (its ConnectionConfig, serialized) for the process's TFX handles.
_CONNECTIONS: dict[bytes, object] = {}
_SHARED = "_fraud_pipeline_shared_connection"


def share_connections() -> bool:
    """Wraps TFX's Metadata.__enter__ once: a handle of a PostgreSQL store enters on the process's one connection to
    it (made by TFX's own __enter__, with its retries, the first time). False on other versions."""
    if not compat.supported("mlmd", "ml-metadata", "tfx"):
        return False
    from ml_metadata.proto import metadata_store_pb2
    from tfx.orchestration import metadata as tfx_metadata

    def wrapped(original):
        def enter(self):
            config = self._connection_config
            if not (isinstance(config, metadata_store_pb2.ConnectionConfig) and config.HasField("postgresql")):
                return original(self)
            key = config.SerializeToString(deterministic=True)
            if key not in _CONNECTIONS:
                original(self)
                _CONNECTIONS[key] = self._store
            else:
                self._store = _CONNECTIONS[key]
                self._users += 1
            return self

        return enter

    _wrap_once(tfx_metadata.Metadata, "__enter__", _SHARED, wrapped)
    return True


def _wrap_once(owner, method: str, flag: str, wrapped) -> None:
    """owner.method replaced by wrapped(the original), once a process (flag marks it done)."""
    if getattr(owner, flag, False):
        return
    original = getattr(owner, method)
    setattr(owner, method, functools.wraps(original)(wrapped(original)))
    setattr(owner, flag, True)


def _by_id(found) -> None:
    """A repeated field of messages with ids, put in id order in place."""
    ordered = sorted(found, key=lambda message: message.id)
    if [m.id for m in ordered] == [m.id for m in found]:
        return
    copies = []
    for message in ordered:
        copy = type(message)()
        copy.CopyFrom(message)
        copies.append(copy)
    del found[:]
    found.extend(copies)


def install() -> bool:
    """Wraps MetadataStore._call once (idempotent); False where MLMD is not the version this was written for."""
    if not compat.supported("mlmd", *DISTRIBUTIONS):
        return False
    from ml_metadata.metadata_store import metadata_store

    def wrapped(original):
        def call(self, method_name, request, response, extra_options=None):
            config = getattr(self, "_config", None)
            if config is None or not hasattr(config, "HasField") or not config.HasField("postgresql"):
                return original(self, method_name, request, response, extra_options)
            _walk(request, encode)
            result = original(self, method_name, request, response, extra_options)
            _walk(response, decode)
            if method_name in _BY_ID:
                _by_id(getattr(response, _BY_ID[method_name]))
            return result

        return call

    _wrap_once(metadata_store.MetadataStore, "_call", _INSTALLED, wrapped)
    return True
