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


def test_s3_delete_many_deletes_the_keys_and_nothing_else_in_one_request(s3):
    store = object_store("media")
    for key in ("tmp/a", "tmp/b", "tmp/c"):
        store.put(key, b"x")

    assert store.delete_many(["tmp/a", "tmp/c"]) == 2

    assert s3.keys("media") == ["tmp/b"]
    with pytest.raises(ValueError, match="at most 1000"):
        store.delete_many([f"k{n}" for n in range(1001)])


def test_s3_delete_many_in_a_versioned_bucket_leaves_no_version_or_marker(s3):
    store = object_store("archive")
    store.put("tmp/a", b"first")
    store.put("tmp/a", b"second")
    store.put("tmp/keep", b"kept")

    store.delete_many(["tmp/a"])

    versions = s3.client.list_object_versions(Bucket=s3.buckets["archive"])
    left = [v["Key"] for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])]
    assert left == ["tmp/keep"]


def test_s3_listings_resume_after_a_key(s3):
    store = object_store("media")
    for key in ("tmp/a", "tmp/b", "tmp/c", "other/d"):
        store.put(key, b"x")
    for key in ("tmp/a", "tmp/b", "tmp/b"):
        s3.client.create_multipart_upload(Bucket=s3.buckets["media"], Key=key)

    assert [o.key for o in store.list("tmp/", start_after="tmp/a")] == ["tmp/b", "tmp/c"]
    assert [u.key for u in store.pending_uploads("tmp/", after_key="tmp/a")] == [
        "tmp/b", "tmp/b"]


def test_s3_aborting_an_upload_already_gone_is_object_missing(s3):
    s3.client.create_multipart_upload(Bucket=s3.buckets["media"], Key="tmp/big")
    store = object_store("media")
    [pending] = store.pending_uploads("tmp/")
    store.abort_upload(pending)
    with pytest.raises(ObjectMissing):
        store.abort_upload(pending)


def test_local_store_lists_in_key_order_and_its_partial_files_are_pending_uploads(tmp_path):
    store = LocalStore(tmp_path / "media")
    for key in ("tmp/a/b", "tmp/a.b", "tmp/a-c"):  # path order and key order differ
        store.put(key, b"x", metadata={"name": "ada.jpg"})
    (tmp_path / "media" / "tmp" / "big.jpg.partial").write_bytes(b"half")

    assert [o.key for o in store.list("tmp/")] == ["tmp/a-c", "tmp/a.b", "tmp/a/b"]
    assert [o.key for o in store.list("tmp/", start_after="tmp/a.b")] == ["tmp/a/b"]
    assert store.delete_many(["tmp/a-c", "tmp/a/b"]) == 2
    assert [o.key for o in store.list()] == ["tmp/a.b"]
    assert len(list((tmp_path / "media" / ".meta").iterdir())) == 1  # theirs went too

    [pending] = store.pending_uploads("tmp/")
    assert pending.key == "tmp/big.jpg"
    assert list(store.pending_uploads("tmp/", after_key="tmp/big.jpg")) == []
    store.abort_upload(pending)
    assert list(store.pending_uploads()) == []
    assert not (tmp_path / "media" / "tmp" / "big.jpg.partial").exists()
    with pytest.raises(ObjectMissing):
        store.abort_upload(pending)
