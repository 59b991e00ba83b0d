"""Records of a prepared day, written as each app writes them (journal entries through the
payments journal's own function), at chosen instants."""

import itertools
from datetime import UTC, datetime

from django.db import transaction

from jobs.models import JobStatHour
from jobs.monitoring.buckets import empty_buckets
from marketplace.models import Order, OrderStatus, User
from payments.models import Account, EntryKind, Payment
from payments.services.accounting import Posting, journal_entry_post

_ids = itertools.count(1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def person(*, role: str = "client", province: str = "ON", joined: datetime | None = None,
           first_name: str = "Sam", last_name: str = "Doe", email: str | None = None,
           **fields) -> User:
    """A marketplace user; joined long before the days the tests compute unless told."""
    number = next(_ids)
    return User.objects.create_user(
        email or f"user{number}@example.test", "pw-user-12345", first_name=first_name,
        last_name=last_name, is_contractor=role == "contractor", province=province,
        date_joined=joined or utc(2025, 1, 1), **fields)


def order(*, client: User, created: datetime, status: str = OrderStatus.OPEN,
          completed: datetime | None = None, updated: datetime | None = None,
          title: str = "Fix the fence", subtotal: int = 10_000, tax: int = 1_300) -> Order:
    made = Order.objects.create(client=client, title=title, province="ON", status=status,
                                subtotal_cents=subtotal, tax_cents=tax,
                                total_cents=subtotal + tax, created_at=created,
                                completed_at=completed)
    # updated_at is auto_now: set it as a later save would have.
    Order.objects.filter(pk=made.pk).update(updated_at=updated or created)
    return made


def payment_posted(*, at: datetime, revenue: int, tax: int, client: User | None = None
                   ) -> Payment:
    """A payment settled at ``at``: its journal entry, revenue and HST."""
    client = client or person()
    paid = Payment.objects.create(
        order=order(client=client, created=utc(2025, 6, 1), subtotal=revenue, tax=tax),
        payer=client, stripe_payment_intent_id=f"pi_test_{next(_ids)}",
        status="succeeded", amount_cents=revenue + tax, tax_cents=tax)
    with transaction.atomic():
        journal_entry_post(payment=paid, kind=EntryKind.PAYMENT, source_key=f"payment:{paid.pk}",
                           posted_at=at, lines=[
                               Posting(Account.STRIPE_BALANCE, debit_cents=revenue + tax),
                               Posting(Account.REVENUE, credit_cents=revenue, province="ON"),
                               Posting(Account.GST_HST_PAYABLE, credit_cents=tax,
                                       tax_type="HST", province="ON")])
    return paid


def refund_posted(payment: Payment, *, at: datetime, revenue: int, tax: int) -> None:
    with transaction.atomic():
        journal_entry_post(payment=payment, kind=EntryKind.REFUND,
                           source_key=f"refund:{payment.pk}:{next(_ids)}", posted_at=at,
                           lines=[Posting(Account.REVENUE, debit_cents=revenue, province="ON"),
                                  Posting(Account.GST_HST_PAYABLE, debit_cents=tax,
                                          tax_type="HST", province="ON"),
                                  Posting(Account.STRIPE_BALANCE,
                                          credit_cents=revenue + tax)])


def job_hour(*, hour: datetime, queue: str = "emails", actor: str = "email_send",
             succeeded: int = 0, failed: int = 0, run_bucket: int = 1,
             wait_bucket: int = 3) -> JobStatHour:
    """An hour of rolled-up job statistics whose runs all fall in one bucket each."""
    runs, waits = empty_buckets(), empty_buckets()
    runs[run_bucket] = waits[wait_bucket] = succeeded + failed
    return JobStatHour.objects.create(hour=hour, queue_name=queue, actor_name=actor,
                                      succeeded=succeeded, failed=failed,
                                      run_buckets=runs, wait_buckets=waits)
