"""``manage.py benchretention`` end to end (its own process on ``config.settings_bench``,
here on the test database and Redis, a real batch worker, a tiny count), and its
verification: a cleanup that deletes one row too many does not pass.

No speed is asserted: speed is what the command measures, not what a test may judge.
"""

import json
import subprocess
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bench import retention
from marketplace.models import ChatMessage, User
from retention.models import LegalHold, RetentionRun
from retention.services import Step, retention_run_start, retention_run_step
from tests.bench.commands import bench_command


def benchretention(*args: str) -> subprocess.CompletedProcess:
    return bench_command("benchretention", *args)


@pytest.mark.django_db(transaction=True)
def test_benchretention_deletes_exactly_the_expired_rows_on_a_real_worker(broker):
    done = benchretention("--count", "2000", "--json", "--bare-count", "500")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["count"] == 2000
    deletion = report["deletion"]
    counts = {key: value for key, value in deletion["run_counts"].items()
              if not key.startswith("chat.")}
    assert counts == {"deleted": 2000, "archived": 0, "kept_unread": 1000, "held": 10}
    assert report["bare_dramatiq"]["jobs"] == 500
    assert report["bare_dramatiq"]["jobs_per_min"] > 0
    assert deletion["wall_s"] > 0 and deletion["rows_per_s"] > 0
    assert report["verification"]["ok"] is True
    assert report["verification"]["problems"] == []
    assert report["verification"]["left"] == {"expired": 0, "kept_unread": 600,
                                              "kept_important": 400, "recent": 990,
                                              "held": 10}
    writer = report["writer"]
    assert writer["inserts"] > 0 and writer["max_ms"] >= writer["p99_ms"] >= writer["p50_ms"]
    assert report["verification"]["writer_rows_kept"] >= writer["inserts"]
    assert set(report["cpu"]) == {"worker_s", "postgres_bench_backends_s",
                                  "postgres_server_s", "cores_busy"}
    # The run was the production actor's, on the worker; the benchmark's rows are gone.
    run = RetentionRun.objects.get(pk=deletion["run_id"])
    assert (run.policy, run.status, run.dry_run) == ("chat-messages", "done", False)
    assert not User.objects.filter(email__startswith=retention.USER_PREFIX).exists()
    assert (ChatMessage.objects.count(), LegalHold.objects.count()) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_benchretention_refuses_beside_expired_messages_that_are_not_its_own():
    user = User.objects.create_user("someone@example.test", "pw-someone-123")
    ChatMessage.objects.create(sender=user, recipient=user, body="old", is_read=True,
                               created_at=timezone.now() - timedelta(days=120))

    done = benchretention("--count", "10", "--bare-count", "0")

    assert done.returncode == 1
    assert "1 chat messages not the benchmark's are past the retention period" in done.stderr
    assert ChatMessage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_verification_catches_a_kept_row_deleted_and_a_wrong_count():
    prepared = retention.prepare(2000)
    # One old unread message turns read after loading: the cleanup takes it as well.
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {ChatMessage._meta.db_table} SET is_read = true WHERE id = "
                       f"(SELECT min(id) FROM {ChatMessage._meta.db_table} WHERE NOT is_read "
                       "AND created_at < now() - interval '90 days')")
    run = retention_run_start("chat-cleanup", dry_run=False)
    while retention_run_step(run.pk, "chat-cleanup") == Step.MORE:
        pass
    run.refresh_from_db()

    found = retention.verify(prepared, run, writer_ids=[])

    assert found["deleted"] == 2001
    assert found["problems"][:3] == ["the run deleted 2001, not 2000",
                                     "599 kept_unread rows left, not 600",
                                     "the run counted 999 kept_unread, not 1000"]
    assert found["problems"][3].startswith("kept rows changed: 1999 rows with checksum ")
    assert len(found["problems"]) == 4
