"""The journal: balanced entries from signed Stripe events through the real view and
handlers, checked line by line with amounts worked out by hand; the database's own
balance check; the daily CSV in a moto_server S3 bucket."""

import csv
import importlib
import io
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import IntegrityError, InternalError, connection, transaction
from django.utils import timezone

from marketplace.models import Order
from payments.models import (
    Account,
    EntryKind,
    JournalEntry,
    JournalLine,
    Payment,
    PaymentStatus,
    StripeEvent,
)
from payments.services import accounting
from payments.services.accounting import (
    AccountingError,
    Posting,
    UnbalancedEntry,
    accounting_fees_collect,
    journal_dispute_closed,
    journal_dispute_opened,
    journal_entry_post,
    journal_payment_post,
    split_cents,
)
from payments.services.accounting_export import (
    CSV_COLUMNS,
    accounting_export,
    business_day_window,
)
from payments.services.events import stripe_event_process, stripe_event_replay
from payments.tax import payment_tax_record, tax_compute
from tests.notifications.conftest import make_user
from tests.payments.conftest import event, intent, post_event

pytestmark = pytest.mark.django_db

SEED = importlib.import_module("payments.migrations.0002_tax_rates")
TAX_DAY = date(2026, 6, 1)
REFUSED = (IntegrityError, InternalError)


@pytest.fixture(autouse=True)
def rates(db):
    SEED.seed_tax_rates(apps, None)  # a transactional test's flush empties the table


@pytest.fixture(autouse=True)
def database_checks_the_balance(request):
    """Deferred checks run at commit, which a test's rolled-back transaction never
    reaches: at the end of each test they are run, so every entry it wrote is checked."""
    yield
    if "transactional_db" in request.fixturenames:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def payment_in(province: str, *, intent_id: str, subtotal: int = 10_000) -> Payment:
    """A pending payment for an order in ``province`` with its tax lines recorded."""
    breakdown = tax_compute(province=province, subtotal_cents=subtotal, on=TAX_DAY)
    payer = make_user(f"payer-{intent_id}@example.test", first_name="Pat")
    order = Order.objects.create(client=payer, title="Deck repair", province=province,
                                 subtotal_cents=subtotal, tax_cents=breakdown.tax_cents,
                                 total_cents=breakdown.total_cents)
    payment = Payment.objects.create(order=order, payer=payer, amount_cents=order.total_cents,
                                     stripe_payment_intent_id=intent_id)
    payment_tax_record(payment=payment, breakdown=breakdown)
    return payment


def deliver(client, payload: dict) -> None:
    post_event(client, payload)
    stripe_event_process(event_id=StripeEvent.objects.get(stripe_id=payload["id"]).pk)


def succeeded(payment: Payment, *, fee: int | None = None) -> dict:
    charge = {"id": f"ch_{payment.pk}"}
    if fee is not None:
        charge["balance_transaction"] = {"id": f"txn_{payment.pk}", "fee": fee}
    return event("payment_intent.succeeded",
                 intent(payment.stripe_payment_intent_id, order=payment.order,
                        latest_charge=charge))


def refunded(payment: Payment, total: int) -> dict:
    return event("charge.refunded", {"id": f"ch_{payment.pk}", "object": "charge",
                                     "payment_intent": payment.stripe_payment_intent_id,
                                     "amount": payment.amount_cents,
                                     "amount_refunded": total})


def lines_of(entry: JournalEntry) -> list[tuple]:
    return [(line.account, line.debit_cents, line.credit_cents, line.tax_type, line.province)
            for line in entry.lines.order_by("id")]


@pytest.mark.parametrize(("province", "fee", "expected"), [
    ("ON", 358, [("1100", 10_942, 0, "", ""), ("5100", 358, 0, "", ""),
                 ("4000", 0, 10_000, "", "ON"), ("2300", 0, 1_300, "HST", "ON")]),
    # QST 9.975 % of $100.00 = 997.5 cents, half up: 998.
    ("QC", 363, [("1100", 11_135, 0, "", ""), ("5100", 363, 0, "", ""),
                 ("4000", 0, 10_000, "", "QC"), ("2300", 0, 500, "GST", "QC"),
                 ("2310", 0, 998, "QST", "QC")]),
    ("BC", 355, [("1100", 10_845, 0, "", ""), ("5100", 355, 0, "", ""),
                 ("4000", 0, 10_000, "", "BC"), ("2300", 0, 500, "GST", "BC"),
                 ("2320", 0, 700, "PST", "BC")]),
    # No fee in the event: posted without it (the hourly fee collection adds it).
    ("AB", None, [("1100", 10_500, 0, "", ""), ("4000", 0, 10_000, "", "AB"),
                  ("2300", 0, 500, "GST", "AB")]),
])
def test_a_settled_payment_posts_one_balanced_entry_by_tax_type(client, province, fee,
                                                                expected):
    payment = payment_in(province, intent_id=f"pi_{province}")

    deliver(client, succeeded(payment, fee=fee))

    [entry] = JournalEntry.objects.all()
    assert (entry.kind, entry.payment_id, entry.source_key, entry.currency) == (
        EntryKind.PAYMENT, payment.pk, f"payment:{payment.pk}", "CAD")
    assert lines_of(entry) == expected
    assert sum(line[1] for line in expected) == sum(line[2] for line in expected)


def test_a_payment_without_tax_lines_credits_the_unallocated_tax_account(client, order):
    deliver(client, event("payment_intent.succeeded", intent("pi_1", order=order)))

    [entry] = JournalEntry.objects.all()
    assert lines_of(entry) == [("1100", 11_300, 0, "", ""), ("4000", 0, 10_000, "", "ON"),
                               ("2390", 0, 1_300, "", "ON")]


def test_a_partial_then_a_full_refund_reverse_the_payment_to_the_cent(client):
    payment = payment_in("QC", intent_id="pi_qc")  # 10,000 + GST 500 + QST 998 = 11,498
    deliver(client, succeeded(payment, fee=363))

    deliver(client, refunded(payment, 5_000))
    deliver(client, refunded(payment, 11_498))

    first, second = JournalEntry.objects.filter(kind=EntryKind.REFUND).order_by("id")
    assert first.source_key == f"refund:{payment.pk}:5000"
    # 5,000 × (10,000, 500, 998) / 11,498 = 4,348.59, 217.43, 433.99: floors 4,348, 217,
    # 433; the 2 cents left to the largest remainders (QST, then revenue).
    assert lines_of(first) == [("4000", 4_349, 0, "", "QC"), ("2300", 217, 0, "GST", "QC"),
                               ("2310", 434, 0, "QST", "QC"), ("1100", 0, 5_000, "", "")]
    assert second.source_key == f"refund:{payment.pk}:11498"
    assert lines_of(second) == [("4000", 5_651, 0, "", "QC"), ("2300", 283, 0, "GST", "QC"),
                                ("2310", 564, 0, "QST", "QC"), ("1100", 0, 6_498, "", "")]
    net = {}
    for line in JournalLine.objects.filter(entry__payment=payment):
        net[line.account] = net.get(line.account, 0) + line.debit_cents - line.credit_cents
    # Revenue and tax fully reversed; Stripe kept its fee.
    assert net == {"1100": -363, "5100": 363, "4000": 0, "2300": 0, "2310": 0}
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.REFUNDED


def test_a_late_smaller_refund_total_posts_nothing(client):
    payment = payment_in("ON", intent_id="pi_on")
    deliver(client, succeeded(payment))
    deliver(client, refunded(payment, 5_000))

    deliver(client, refunded(payment, 3_000))

    assert JournalEntry.objects.filter(kind=EntryKind.REFUND).count() == 1


def test_split_cents_is_exact_and_never_exceeds_a_weight():
    assert split_cents(5_000, [10_000, 500, 998]) == [4_349, 217, 434]
    assert split_cents(1, [1, 1, 1]) == [1, 0, 0]
    assert split_cents(0, [3, 4]) == [0, 0]
    for total in range(0, 1_301):
        shares = split_cents(total, [1_000, 130, 170])
        assert sum(shares) == total
        assert all(share <= weight for share, weight in zip(shares, [1_000, 130, 170],
                                                            strict=True))
    with pytest.raises(ValueError):
        split_cents(5, [0, 0])


def test_a_dispute_opened_then_lost_moves_the_funds_then_books_the_loss(client):
    payment = payment_in("ON", intent_id="pi_on")
    deliver(client, succeeded(payment, fee=358))

    opened = journal_dispute_opened(payment=payment, amount_cents=11_300,
                                    stripe_dispute_id="dp_1")
    lost = journal_dispute_closed(payment=payment, amount_cents=11_300,
                                  stripe_dispute_id="dp_1", outcome="lost")

    assert (opened.kind, opened.source_key) == (EntryKind.DISPUTE_OPENED, "dispute:dp_1:opened")
    assert lines_of(opened) == [("1200", 11_300, 0, "", ""), ("1100", 0, 11_300, "", "")]
    assert (lost.kind, lost.source_key) == (EntryKind.DISPUTE_LOST, "dispute:dp_1:closed")
    assert lines_of(lost) == [("5200", 11_300, 0, "", ""), ("1200", 0, 11_300, "", "")]
    # Delivered again (the disputes app's hooks replayed): nothing more.
    assert journal_dispute_opened(payment=payment, amount_cents=11_300,
                                  stripe_dispute_id="dp_1") is None
    assert journal_dispute_closed(payment=payment, amount_cents=11_300,
                                  stripe_dispute_id="dp_1", outcome="lost") is None
    assert JournalEntry.objects.count() == 3


def test_a_dispute_won_returns_the_funds_and_a_close_without_opening_posts_both(client):
    payment = payment_in("ON", intent_id="pi_on")
    deliver(client, succeeded(payment, fee=358))

    won = journal_dispute_closed(payment=payment, amount_cents=5_000,
                                 stripe_dispute_id="dp_2", outcome="won")

    assert lines_of(won) == [("1100", 5_000, 0, "", ""), ("1200", 0, 5_000, "", "")]
    assert JournalEntry.objects.filter(source_key="dispute:dp_2:opened").exists()
    with pytest.raises(AccountingError):
        journal_dispute_closed(payment=payment, amount_cents=5_000, stripe_dispute_id="dp_3",
                               outcome="warning_closed")


def test_the_same_event_replayed_or_posted_again_gives_one_entry(client):
    payment = payment_in("ON", intent_id="pi_on")
    payload = succeeded(payment, fee=358)
    deliver(client, payload)
    row = StripeEvent.objects.get(stripe_id=payload["id"])

    assert stripe_event_replay(event=row)  # staff replay from admin
    stripe_event_process(event_id=row.pk)
    deliver(client, {**payload, "id": "evt_reconciled_copy"})  # the same state, another id
    payment.refresh_from_db()
    assert journal_payment_post(payment=payment) is None  # the hook called once more

    assert JournalEntry.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_posting_the_same_payment_at_once_write_one_entry():
    payment = payment_in("ON", intent_id="pi_on")
    Payment.objects.filter(pk=payment.pk).update(status=PaymentStatus.SUCCEEDED)
    results, barrier = [], threading.Barrier(2)

    def post():
        try:
            barrier.wait()
            with transaction.atomic():  # no payment lock: the unique source key decides
                results.append(journal_payment_post(payment=Payment.objects.get(pk=payment.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(result is None for result in results) == [False, True]
    assert JournalEntry.objects.count() == 1 and JournalLine.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_an_entry_that_does_not_balance():
    payment = payment_in("ON", intent_id="pi_on")

    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        entry = JournalEntry.objects.create(kind=EntryKind.PAYMENT, payment=payment,
                                            source_key="payment:x")
        JournalLine.objects.create(entry=entry, account=Account.STRIPE_BALANCE,
                                   debit_cents=11_300)
        JournalLine.objects.create(entry=entry, account=Account.REVENUE, credit_cents=11_299)
    with pytest.raises(IntegrityError, match="0 line"), transaction.atomic():
        JournalEntry.objects.create(kind=EntryKind.PAYMENT, payment=payment,
                                    source_key="payment:empty")
    with pytest.raises(IntegrityError, match="journal_line_debit_or_credit"), \
            transaction.atomic():
        entry = JournalEntry.objects.create(kind=EntryKind.PAYMENT, payment=payment,
                                            source_key="payment:both")
        JournalLine.objects.create(entry=entry, account=Account.STRIPE_BALANCE,
                                   debit_cents=5, credit_cents=5)

    assert not JournalEntry.objects.exists() and not JournalLine.objects.exists()
    with pytest.raises(UnbalancedEntry):  # refused in code before it reaches the database
        journal_entry_post(payment=payment, kind=EntryKind.PAYMENT, source_key="payment:y",
                           lines=[Posting(Account.STRIPE_BALANCE, debit_cents=2),
                                  Posting(Account.REVENUE, credit_cents=1)])


@pytest.mark.django_db(transaction=True)
def test_journal_lines_are_never_changed_or_deleted():
    payment = payment_in("ON", intent_id="pi_on")
    entry = journal_payment_post(payment=payment)

    with pytest.raises(REFUSED, match="never changed"):
        JournalLine.objects.filter(entry=entry).update(debit_cents=1)
    with pytest.raises(REFUSED, match="kept 7 years"):
        JournalLine.objects.filter(entry=entry).delete()
    with pytest.raises(REFUSED, match="kept 7 years"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM payments_journalentry")
    assert JournalLine.objects.filter(entry=entry).count() == 3


def test_the_hourly_collection_posts_the_fee_stripe_did_not_send(client, monkeypatch):
    payment = payment_in("AB", intent_id="pi_ab")
    deliver(client, succeeded(payment))  # no balance transaction in the event
    asked = []

    def retrieve(intent_id):
        asked.append(intent_id)
        return {"id": intent_id, "latest_charge": {
            "id": "ch_1", "balance_transaction": {"id": "txn_1", "fee": 335}}}

    monkeypatch.setattr("payments.stripe_api.payment_intent_retrieve", retrieve)
    later = timezone.now() + timedelta(minutes=11)

    assert accounting_fees_collect(now=later) == {"checked": 1, "posted": 1,
                                                  "unavailable": 0, "refused": 0}
    assert accounting_fees_collect(now=later)["checked"] == 0

    assert asked == ["pi_ab"]
    [fee] = JournalEntry.objects.filter(kind=EntryKind.FEE)
    assert (fee.source_key, lines_of(fee)) == (f"fee:{payment.pk}", [
        ("5100", 335, 0, "", ""), ("1100", 0, 335, "", "")])
    payment.refresh_from_db()
    assert payment.fee_cents == 335


def test_a_fee_not_yet_known_is_asked_again_later(client, monkeypatch):
    payment = payment_in("AB", intent_id="pi_ab")
    deliver(client, succeeded(payment))
    monkeypatch.setattr("payments.stripe_api.payment_intent_retrieve",
                        lambda intent_id: {"id": intent_id, "latest_charge": "ch_1"})

    counts = accounting_fees_collect(now=timezone.now() + timedelta(minutes=11))

    assert counts == {"checked": 1, "posted": 0, "unavailable": 1, "refused": 0}
    assert not JournalEntry.objects.filter(kind=EntryKind.FEE).exists()
    assert accounting.payments_missing_fee(now=timezone.now() + timedelta(minutes=11),
                                           limit=10) == [payment.pk]


# --- The daily CSV ------------------------------------------------------------------------

def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(("day", "before", "inside", "after"), [
    # DST ends: 2026-11-01 is 25 hours long in Toronto, 04:00Z to 05:00Z the next day;
    # 01:30 local happens twice (05:30Z EDT, 06:30Z EST).
    (date(2026, 11, 1), "2026-11-01T03:59:59",
     ["2026-11-01T04:00:00", "2026-11-01T05:30:00", "2026-11-01T06:30:00",
      "2026-11-02T04:59:59"], "2026-11-02T05:00:00"),
    # DST starts: 2026-03-08 is 23 hours long, 05:00Z to 04:00Z the next day.
    (date(2026, 3, 8), "2026-03-08T04:59:59",
     ["2026-03-08T05:00:00", "2026-03-08T06:59:59", "2026-03-08T07:00:00",
      "2026-03-09T03:59:59"], "2026-03-09T04:00:00"),
])
def test_the_daily_csv_holds_exactly_the_lines_of_that_toronto_day(s3, day, before, inside,
                                                                   after):
    start, end = business_day_window(day)
    assert (end - start) == timedelta(hours=25 if day.month == 11 else 23)
    payment = payment_in("QC", intent_id="pi_qc")
    entries = {}
    for n, moment in enumerate([before, *inside, after]):
        entries[moment] = journal_entry_post(
            payment=payment, kind=EntryKind.DISPUTE_OPENED, source_key=f"dispute:dp_{n}:opened",
            posted_at=at(moment), lines=[Posting(Account.DISPUTED_FUNDS, debit_cents=1_234 + n),
                                         Posting(Account.STRIPE_BALANCE, credit_cents=1_234 + n)])

    result = accounting_export(day=day)

    key = f"accounting/journal/{day:%Y/%m/%d}.csv"
    assert (result["key"], result["lines"], result["written"]) == (key, 8, True)
    body = s3.client.get_object(Bucket=s3.buckets["archive"], Key=key)["Body"].read()
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows[0] == CSV_COLUMNS
    assert [int(row[2]) for row in rows[1:]] == [
        entries[moment].pk for moment in inside for _ in range(2)]
    first = entries[inside[0]]
    assert rows[1] == [day.isoformat(), f"{inside[0]}.000000Z", str(first.pk),
                       str(first.lines.order_by("id").first().pk), "dispute_opened",
                       "dispute:dp_1:opened", str(payment.pk), "1200",
                       "Accounts receivable: disputed funds held by Stripe", "12.35", "0.00",
                       "CAD", "", ""]
    assert body.endswith(b"\r\n") and b"payer-" not in body and b"Deck" not in body

    # Again: the same bytes, so nothing is written (no new version in the bucket).
    assert accounting_export(day=day) == {**result, "written": False}
    versions = s3.client.list_object_versions(Bucket=s3.buckets["archive"], Prefix=key)
    assert len(versions["Versions"]) == 1


def test_the_command_exports_a_past_day_and_refuses_one_not_over(s3):
    out = io.StringIO()
    call_command("accounting_export", "--date", "2026-01-15", stdout=out)

    assert "accounting/journal/2026/01/15.csv: 0 line(s), written" in out.getvalue()
    body = s3.client.get_object(Bucket=s3.buckets["archive"],
                                Key="accounting/journal/2026/01/15.csv")["Body"].read()
    assert body == (",".join(CSV_COLUMNS) + "\r\n").encode()
    with pytest.raises(CommandError, match="not over"):
        call_command("accounting_export", "--date", timezone.now().date().isoformat())
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("accounting_export", "--date", "15/01/2026")


def test_the_schedules_are_declared():
    from payments.tasks import SCHEDULES

    specs = {spec.name: spec for spec in SCHEDULES}
    assert (specs["accounting-export"].actor_name, specs["accounting-export"].cron,
            specs["accounting-export"].time_zone) == ("accounting_export", "30 3 * * *",
                                                      "America/Toronto")
    assert specs["accounting-fees"].actor_name == "accounting_fees_collect"
