"""The object stores: S3 through moto_server, and the local directory make run uses."""

import pytest

from jobs.storage import LocalStore, ObjectMissing, object_store


def test_s3_store_round_trip_and_deletes_every_version(s3):
    store = object_store("archive")
    store.put("a/one.jsonl.gz", b"first", metadata={"sha256": "x"})
    store.put("a/one.jsonl.gz", b"second")  # a second version
    assert store.get("a/one.jsonl.gz") == b"second"
    assert [o.key for o in store.list("a/")] == ["a/one.jsonl.gz"]
    assert store.delete("a/one.jsonl.gz") == 2
    versions = s3.client.list_object_versions(Bucket=s3.buckets["archive"])
    assert "Versions" not in versions and "DeleteMarkers" not in versions
    with pytest.raises(ObjectMissing):
        store.get("a/one.jsonl.gz")
    with pytest.raises(ObjectMissing):
        store.metadata("a/one.jsonl.gz")


def test_s3_store_lists_and_aborts_pending_multipart_uploads(s3):
    started = s3.client.create_multipart_upload(Bucket=s3.buckets["media"], Key="tmp/big")
    store = object_store("media")
    [pending] = list(store.pending_uploads("tmp/"))
    assert pending.upload_id == started["UploadId"]
    store.abort_upload(pending)
    assert list(store.pending_uploads("tmp/")) == []


def test_local_store_round_trip(tmp_path):
    store = LocalStore(tmp_path / "archive")
    store.put("x/y.bin", b"data", metadata={"sha256": "abc"})
    assert store.get("x/y.bin") == b"data"
    assert store.metadata("x/y.bin") == {"sha256": "abc"}
    assert [o.key for o in store.list()] == ["x/y.bin"]
    assert store.delete("x/y.bin") == 1
    assert list(store.list()) == []
    with pytest.raises(ValueError):
        store.put("../escape", b"")


def test_local_backend_is_the_default_of_debug(settings, tmp_path):
    settings.STORAGE_BACKEND = "local"
    settings.LOCAL_STORAGE_DIR = tmp_path
    assert isinstance(object_store("media"), LocalStore)
