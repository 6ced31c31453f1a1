"""The Pusher's versions: none lost when pushes share a second or race, and none visible half-written."""

import os
import threading

import pytest
from tfx.dsl.io import fileio

from components.lib import serving
from components.pusher import component as pusher

FILES = ("saved_model.pb", "fingerprint.pb", "variables/variables.index", "variables/variables.data-00000-of-00001")


@pytest.fixture
def model(tmp_path):
    folder = tmp_path / "model"
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(os.urandom(2048))
    return str(folder)


def _same(a, b):
    return all(open(os.path.join(a, f), "rb").read() == open(os.path.join(b, f), "rb").read() for f in FILES)


def test_two_pushes_in_the_same_second_keep_both(model, tmp_path):
    serving = str(tmp_path / "serving")
    first = pusher.push(model, serving, clock=lambda: 1_800_000_000.4)
    second = pusher.push(model, serving, clock=lambda: 1_800_000_000.9)
    assert first == ("1800000000", os.path.join(serving, "1800000000"))
    assert second == ("1800000001", os.path.join(serving, "1800000001"))
    assert pusher.versions(serving) == [1800000000, 1800000001]
    assert _same(model, first[1]) and _same(model, second[1])
    # Nothing is left behind but the versions.
    assert sorted(os.listdir(serving)) == ["1800000000", "1800000001"]


def test_a_clock_behind_the_newest_version_still_gives_a_newer_one(model, tmp_path):
    serving = str(tmp_path / "serving")
    os.makedirs(os.path.join(serving, "1900000000"))
    assert pusher.push(model, serving, clock=lambda: 1_800_000_000)[0] == "1900000001"


def test_racing_pushes_each_get_their_own_complete_version(model, tmp_path):
    serving = str(tmp_path / "serving")
    results, barrier = [], threading.Barrier(4)

    def one():
        barrier.wait()
        results.append(pusher.push(model, serving, clock=lambda: 1_800_000_000))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(v for v, _ in results) == [str(1_800_000_000 + i) for i in range(4)]
    assert all(_same(model, path) for _, path in results)
    assert sorted(os.listdir(serving)) == [str(1_800_000_000 + i) for i in range(4)]


def test_a_server_polling_the_folder_never_sees_half_a_model(model, tmp_path, monkeypatch):
    """While files are copied, no version folder exists yet; the version appears whole, at once."""
    serving = str(tmp_path / "serving")
    copied, seen = [], []
    real_copy = fileio.copy

    def copy(src, dst, overwrite=False):
        seen.append(pusher.versions(serving))  # what a poller would find at this moment
        copied.append(dst)
        real_copy(src, dst, overwrite)

    monkeypatch.setattr(fileio, "copy", copy)
    version, path = pusher.push(model, serving, clock=lambda: 1_800_000_000)
    assert len(copied) == len(FILES) and all(v == [] for v in seen)
    assert pusher.versions(serving) == [int(version)] and _same(model, path)
    # saved_model.pb, the file TF Serving waits for, is copied last (what protects an object store, where the
    # copy goes straight into the version folder).
    assert copied[-1].endswith(os.sep + "saved_model.pb")
    assert all(not c.endswith("saved_model.pb") for c in copied[:-1])


def test_an_object_store_push_copies_saved_model_last_into_a_free_version(model, tmp_path, monkeypatch):
    """gs:// cannot rename a folder at once: the copy goes into a free version folder, saved_model.pb last."""
    local = str(tmp_path / "bucket")
    os.makedirs(os.path.join(local, "1800000000"))
    # Map a fake gs:// root onto a local folder, so the code takes its object-store branch.
    to_local = lambda p: p.replace("gs://bucket", local)  # noqa: E731
    for name in ("exists", "makedirs", "listdir"):
        real = getattr(fileio, name)
        monkeypatch.setattr(fileio, name, lambda p, _real=real: _real(to_local(p)))
    for name in ("write_manifest", "file_digest"):
        real = getattr(serving, name)
        monkeypatch.setattr(serving, name, lambda p, *more, _real=real: _real(to_local(p), *more))
    copied = []
    real_copy = fileio.copy
    monkeypatch.setattr(
        fileio, "copy", lambda src, dst, overwrite=False: (copied.append(dst), real_copy(src, to_local(dst), True))
    )
    version, path = pusher.push(model, "gs://bucket", clock=lambda: 1_800_000_000)
    assert (version, path) == ("1800000001", "gs://bucket/1800000001")
    assert copied[-1] == "gs://bucket/1800000001/saved_model.pb"
    assert _same(model, to_local(path))


def test_files_added_to_a_push_are_there_before_the_version_appears(model, tmp_path):
    serving = str(tmp_path / "serving")
    seen = []

    def add(folder, version):
        # Called on the hidden staging copy: no version is visible yet, and saved_model.pb is not copied yet.
        seen.append((pusher.versions(serving), os.path.exists(os.path.join(folder, "saved_model.pb"))))
        os.makedirs(os.path.join(folder, "assets.extra"))
        open(os.path.join(folder, "assets.extra", "extra"), "w").write("x")

    version, path = pusher.push(model, serving, clock=lambda: 1_800_000_000, add=add)
    assert seen == [([], False)]
    assert open(os.path.join(path, "assets.extra", "extra")).read() == "x"
    assert _same(model, path)
    assert sorted(os.listdir(serving)) == [version]


def test_a_push_that_runs_out_of_disk_leaves_no_staging_copy_and_no_version(model, tmp_path, monkeypatch):
    serving = str(tmp_path / "serving")
    pusher.push(model, serving, clock=lambda: 1_800_000_000)
    real_copy, calls = fileio.copy, []

    def full(src, dst, overwrite=False):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device", dst)
        real_copy(src, dst, overwrite)

    monkeypatch.setattr(fileio, "copy", full)
    with pytest.raises(OSError, match="No space left"):
        pusher.push(model, serving, clock=lambda: 1_800_000_100)
    assert len(calls) == 3 and sorted(os.listdir(serving)) == ["1800000000"]
