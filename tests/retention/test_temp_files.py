"""The temp-files cleanup against a real directory and a real moto_server: files, objects
and multipart uploads at 23 and 25 hours, dry runs, batches that resume, the safety checks,
the command and a real worker.

Ages by time travel: a local file's time is set back (``os.utime``). moto_server stamps an
object with the present and every multipart upload with one fixed instant, which no test can
move; so those runs are started on the real clock (their safety checks pass) and then moved,
as a row's timestamps are moved back in test_cleanups.py: the run's recorded ``now`` and
cutoff are set to 23 or 25 hours after the object's time. A step compares ages only with the
cutoff recorded in its run.
"""

import os
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditLog
from jobs.storage import object_store
from retention import tempfiles
from retention.models import RetentionRun
from retention.services import RetentionRefused, Step
from retention.tempfiles import temp_files_report, temp_files_run_start, temp_files_run_step
from tests.conftest import drain

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
ZERO = {"local_files_deleted": 0, "local_dirs_deleted": 0, "s3_objects_deleted": 0,
        "multipart_aborted": 0, "kept_young": 0}
ZERO_DRY = {"local_files_would_delete": 0, "local_dirs_would_delete": 0,
            "s3_objects_would_delete": 0, "multipart_would_abort": 0, "kept_young": 0}


@pytest.fixture(autouse=True)
def temp_dir(tmp_path, settings) -> Path:
    """Every test's temporary directory (never the project's .var/tmp) and local stores."""
    settings.TEMP_FILES_DIR = tmp_path / "tmp"
    settings.LOCAL_STORAGE_DIR = tmp_path / "storage"
    settings.TEMP_S3_PREFIX = "tmp/"
    settings.TEMP_FILES_DIR.mkdir()
    return settings.TEMP_FILES_DIR


@pytest.fixture
def now():
    return timezone.now()


def local_file(root: Path, name: str, *, age: timedelta, now) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"leftover")
    set_age(path, age, now)
    return path


def set_age(path: Path, age: timedelta, now) -> None:
    stamp = (now - age).timestamp()
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def travel(run: RetentionRun, to) -> None:
    """Move a started run to ``to``: its recorded now, and the cutoff 24 hours before."""
    RetentionRun.objects.filter(pk=run.pk).update(started_at=to, cutoff=to - 24 * HOUR)


def run_all(run: RetentionRun, *, batch_size: int | None = None) -> RetentionRun:
    while temp_files_run_step(run.pk, max_batches=1, batch_size=batch_size) == Step.MORE:
        pass
    run.refresh_from_db()
    return run


def uploads(s3, prefix: str = "") -> list[str]:
    answer = s3.client.list_multipart_uploads(Bucket=s3.buckets["media"], Prefix=prefix)
    return sorted(upload["Key"] for upload in answer.get("Uploads", []))


def test_local_files_25_hours_old_go_23_hours_old_stay(temp_dir, now):
    local_file(temp_dir, "upload-ada-lovelace.jpg", age=25 * HOUR, now=now)
    local_file(temp_dir, "user-42/variant.webp", age=25 * HOUR, now=now)
    local_file(temp_dir, "user-42/in-progress.jpg", age=23 * HOUR, now=now)
    local_file(temp_dir, "user-7/crashed.jpg.partial", age=25 * HOUR, now=now)
    local_file(temp_dir, "recent.jpg", age=23 * HOUR, now=now)
    (temp_dir / "empty-old").mkdir()
    set_age(temp_dir / "empty-old", 25 * HOUR, now)
    (temp_dir / "empty-young").mkdir()
    set_age(temp_dir / "empty-young", 23 * HOUR, now)
    outside = local_file(temp_dir.parent, "elsewhere.txt", age=100 * HOUR, now=now)

    run = run_all(temp_files_run_start(dry_run=False, now=now))

    # user-7/ was emptied by this run: it has a fresh time, and goes tomorrow.
    assert files_under(temp_dir) == ["empty-young", "recent.jpg", "user-42",
                                     "user-42/in-progress.jpg", "user-7"]
    assert outside.exists()
    assert (run.status, run.dry_run, run.cutoff) == (RetentionRun.Status.DONE, False,
                                                     now - 24 * HOUR)
    assert run.counts == {**ZERO, "local_files_deleted": 3, "local_dirs_deleted": 1,
                          "kept_young": 3}
    assert run.position == {} and run.finished_at is not None
    entry = AuditLog.objects.get(action="retention.run")
    assert entry.metadata == {"policy": "temp-files", "dry_run": False, **run.counts}
    assert (entry.resource_type, entry.resource_id) == ("retention.retentionrun", str(run.pk))


def test_a_symlink_in_temp_storage_is_removed_never_followed(temp_dir, tmp_path, now):
    target = tmp_path / "precious"
    target.mkdir()
    local_file(target, "keep.txt", age=100 * HOUR, now=now)
    (temp_dir / "link").symlink_to(target)
    set_age(temp_dir / "link", 25 * HOUR, now)

    run = run_all(temp_files_run_start(dry_run=False, now=now))

    assert files_under(temp_dir) == [] and (target / "keep.txt").exists()
    assert run.counts["local_files_deleted"] == 1


def test_s3_objects_under_the_prefix_go_at_25_hours_stay_at_23_others_never(s3):
    store = object_store("media")
    for key in ("tmp/upload-ada.jpg", "tmp/user-42/variant.webp", "photos/user-42/a.jpg",
                "tmpl/not-temp.txt"):
        store.put(key, b"bytes")
    modified = max(o.modified for o in store.list())

    young = temp_files_run_start(dry_run=False)
    travel(young, modified + 23 * HOUR)
    young = run_all(young)
    assert len(s3.keys("media")) == 4
    assert young.counts == {**ZERO, "kept_young": 2}

    old = temp_files_run_start(dry_run=False)
    travel(old, modified + 25 * HOUR)
    old = run_all(old)
    assert s3.keys("media") == ["photos/user-42/a.jpg", "tmpl/not-temp.txt"]
    assert old.counts == {**ZERO, "s3_objects_deleted": 2}


def test_multipart_uploads_are_aborted_at_25_hours_kept_at_23_others_never(s3):
    bucket = s3.buckets["media"]
    for key in ("tmp/big-ada.mov", "tmp/big-ada.mov", "tmp/user-42/raw.tiff", "photos/big"):
        s3.client.create_multipart_upload(Bucket=bucket, Key=key)
    # moto_server reports one fixed instant as every upload's Initiated.
    initiated = max(u["Initiated"] for u in s3.client.list_multipart_uploads(
        Bucket=bucket)["Uploads"])

    young = temp_files_run_start(dry_run=False)
    travel(young, initiated + 23 * HOUR)
    assert run_all(young).counts == {**ZERO, "kept_young": 3}
    assert len(uploads(s3)) == 4

    old = temp_files_run_start(dry_run=False)
    travel(old, initiated + 25 * HOUR)
    assert run_all(old).counts == {**ZERO, "multipart_aborted": 3}
    assert uploads(s3) == ["photos/big"]


def test_a_dry_run_counts_and_changes_nothing(s3, temp_dir, now):
    local_file(temp_dir, "a/old.jpg", age=25 * HOUR, now=now)
    object_store("media").put("tmp/old.jpg", b"x")
    s3.client.create_multipart_upload(Bucket=s3.buckets["media"], Key="tmp/big")
    before = (files_under(temp_dir), s3.keys("media"), uploads(s3))

    run = temp_files_run_start(dry_run=True, now=now)
    travel(run, now + 25 * HOUR)  # the object 25 hours old (the file 50)
    run = run_all(run)

    assert (files_under(temp_dir), s3.keys("media"), uploads(s3)) == before
    assert run.counts == {**ZERO_DRY, "local_files_would_delete": 1,
                          "s3_objects_would_delete": 1, "multipart_would_abort": 1}
    assert AuditLog.objects.get(action="retention.run").metadata["dry_run"] is True
    # The report counts the same way, from the present: the object is young.
    report = temp_files_report(now)
    assert {key: report[key] for key in ZERO_DRY} == {
        **ZERO_DRY, "local_files_would_delete": 1, "multipart_would_abort": 1,
        "kept_young": 1}
    assert (files_under(temp_dir), s3.keys("media"), uploads(s3)) == before


def test_a_run_goes_batch_by_batch_from_its_position(s3, temp_dir, now, request):
    # The directory walks by path parts: a/ whole, then a-c, a.b, b/ (keys would sort
    # a-c, a.b, a/…): a batch can stop and resume inside a directory or past it.
    then = now + 25 * HOUR  # the run's time: the objects written now are 25 hours old
    for name in ("a/1", "a/2", "a.b", "a-c", "b/c/d"):
        local_file(temp_dir, name, age=25 * HOUR, now=then)
    local_file(temp_dir, "a/young", age=1 * HOUR, now=then)
    store = object_store("media")
    for n in range(5):
        store.put(f"tmp/{n}", b"x")
    requests = []  # the DeleteObjects requests, as boto3 sends them
    events = store.client.meta.events  # (the client is shared: the handler goes after)
    events.register("provide-client-params.s3.DeleteObjects",
                    lambda params, **_: requests.append(params), unique_id="test-batches")
    request.addfinalizer(lambda: events.unregister("provide-client-params.s3.DeleteObjects",
                                                   unique_id="test-batches"))

    run = temp_files_run_start(dry_run=False, now=now)
    travel(run, then)
    assert temp_files_run_step(run.pk, max_batches=1, batch_size=2) == Step.MORE
    run.refresh_from_db()
    assert run.position == {"phase": "local-files", "after": ["a", "2"]}
    assert run.counts["local_files_deleted"] == 2
    assert temp_files_run_step(run.pk, max_batches=1, batch_size=2) == Step.MORE
    run.refresh_from_db()
    assert run.position == {"phase": "local-files", "after": ["a-c"]}
    assert (run.counts["local_files_deleted"], run.counts["kept_young"]) == (3, 1)
    run = run_all(run, batch_size=2)

    assert files_under(temp_dir) == ["a", "a/young", "b", "b/c"]
    assert s3.keys("media") == []
    assert run.counts == {**ZERO, "local_files_deleted": 5, "s3_objects_deleted": 5,
                          "kept_young": 1}
    assert [len(r["Delete"]["Objects"]) for r in requests] == [2, 2, 1]
    assert run.position == {}
    # A repeated message of a finished run does nothing.
    assert temp_files_run_step(run.pk) == Step.OVER


def test_under_local_storage_the_media_stores_temp_prefix_is_cleaned_too(settings, now):
    settings.STORAGE_BACKEND = "local"
    store = object_store("media")
    store.put("tmp/user-42/upload.jpg", b"x", metadata={"name": "ada.jpg"})
    store.put("tmp/young.jpg", b"x")
    store.put("photos/old.jpg", b"x")
    root = Path(store.name)
    (root / "tmp" / "crashed.jpg.partial").write_bytes(b"half")
    for key in ("tmp/user-42/upload.jpg", "photos/old.jpg", "tmp/crashed.jpg.partial"):
        set_age(root / key, 25 * HOUR, now)

    run = run_all(temp_files_run_start(dry_run=False, now=now))

    assert [o.key for o in store.list()] == ["photos/old.jpg", "tmp/young.jpg"]
    assert list(store.pending_uploads()) == []
    assert len(list((root / ".meta").iterdir())) == 2  # the deleted object's went with it
    assert run.counts == {**ZERO, "s3_objects_deleted": 1, "multipart_aborted": 1,
                          "kept_young": 1}


def test_a_young_cutoff_or_unsafe_temp_storage_is_refused_and_nothing_deleted(
        settings, temp_dir, now):
    old = local_file(temp_dir, "old.jpg", age=25 * HOUR, now=now)

    with pytest.raises(RetentionRefused, match="younger than 24 hours"):
        temp_files_run_start(dry_run=False, now=now, cutoff=now - 23 * HOUR)
    settings.TEMP_S3_PREFIX = ""  # the whole bucket
    with pytest.raises(RetentionRefused, match="TEMP_S3_PREFIX"):
        temp_files_run_start(dry_run=False, now=now)
    settings.TEMP_S3_PREFIX = "tmp/"
    settings.TEMP_FILES_DIR = settings.BASE_DIR
    with pytest.raises(RetentionRefused, match="TEMP_FILES_DIR"):
        temp_files_run_start(dry_run=False, now=now)
    assert "refused" in temp_files_report(now)

    assert old.exists()
    refused = RetentionRun.objects.filter(policy="temp-files",
                                          status=RetentionRun.Status.REFUSED)
    assert refused.count() == 3
    assert AuditLog.objects.filter(action="retention.refused", is_critical=True).count() == 3


def test_the_command_is_a_dry_run_unless_for_real_and_prints_counts_only(temp_dir, now):
    local_file(temp_dir, "user-42/ada-lovelace.jpg", age=25 * HOUR, now=now)
    out, err = StringIO(), StringIO()

    call_command("retention", "run", "temp-files-cleanup", stdout=out, stderr=err)
    assert (temp_dir / "user-42" / "ada-lovelace.jpg").exists()
    assert "local_files_would_delete': 1" in out.getvalue()
    report = StringIO()
    call_command("retention", "report", stdout=report)
    assert "temp-files-cleanup (temp-files, before" in report.getvalue()
    assert "local_files_would_delete 1" in report.getvalue()

    call_command("retention", "run", "temp-files-cleanup", "--for-real", stdout=out,
                 stderr=err)
    assert not (temp_dir / "user-42" / "ada-lovelace.jpg").exists()
    assert "local_files_deleted': 1" in out.getvalue()
    printed = out.getvalue() + err.getvalue() + report.getvalue()
    assert "ada" not in printed and "user-42" not in printed


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_actor_cleans_through_a_real_worker_in_batches(
        s3, temp_dir, now, broker, worker, monkeypatch):
    from jobs.scheduling.selectors import default_schedule_specs
    from retention.tasks import retention_temp_files_cleanup

    monkeypatch.setattr(tempfiles, "BATCH_SIZE", 2)  # so it re-enqueues itself
    for n in range(25):
        local_file(temp_dir, f"user-{n}/upload.jpg", age=25 * HOUR, now=now)
    local_file(temp_dir, "young.jpg", age=23 * HOUR, now=now)
    object_store("media").put("tmp/young.jpg", b"x")  # written now: young
    for n in range(3):  # moto's uploads are years old
        s3.client.create_multipart_upload(Bucket=s3.buckets["media"], Key=f"tmp/big-{n}")

    retention_temp_files_cleanup.send()
    drain(broker, worker)

    # The emptied user-N/ directories have a fresh time: they go tomorrow.
    assert [p for p in files_under(temp_dir) if "/" in p] == []
    assert "young.jpg" in files_under(temp_dir)
    assert s3.keys("media") == ["tmp/young.jpg"] and uploads(s3) == []
    [run] = RetentionRun.objects.all()
    assert (run.status, run.dry_run) == (RetentionRun.Status.DONE, False)
    assert run.counts == {**ZERO, "local_files_deleted": 25, "multipart_aborted": 3,
                          "kept_young": 2}  # young.jpg, tmp/young.jpg
    [spec] = [s for s in default_schedule_specs() if s.name == "temp-files-cleanup"]
    assert (spec.actor_name, spec.cron, spec.time_zone) == (
        "retention_temp_files_cleanup", "0 5 * * *", "UTC")
    assert retention_temp_files_cleanup.queue_name == "maintenance"
