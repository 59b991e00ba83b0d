"""Accounting: balanced journal entries for every settled payment, refund, Stripe fee and
dispute, in the currency of the payment (CAD), in cents.

Chart of accounts (:class:`payments.models.Account`)::

  1100 Stripe balance        money Stripe holds for us until a payout (payouts: not posted)
  1200 Disputed funds        what Stripe withdrew for an open dispute, owed back if we win
  2300 GST/HST payable       to the CRA; tax_type GST or HST on the line
  2310 QST payable           to Revenu Québec
  2320 PST payable           BC or SK: the province is on the line
  2330 RST payable           Manitoba
  2390 Sales tax, unallocated  tax of a payment without tax lines: for review, never guessed
  4000 Revenue               the price before tax (the province of the supply on the line)
  5100 Stripe fees
  5200 Dispute losses

Posting rules (Dr = debit, Cr = credit; each entry unique on its source key):

- **payment** ``payment:<payment id>``, when a payment becomes succeeded (ON_SUCCEEDED hook,
  in the handler's transaction): Dr 1100 amount − fee; Dr 5100 fee (when known); Cr 4000
  amount − tax; Cr 23xx each tax line (:class:`payments.models.PaymentTaxLine`, by type and
  province). A payment without tax lines but with ``tax_cents`` credits 2390 with it, on the
  order's province: the tax was charged, but by which tax is not recorded, so nothing is
  guessed (the export shows it and staff reclassify).
- **fee** ``fee:<payment id>``: Dr 5100 / Cr 1100 Stripe's fee, when it was not known at
  posting. Webhook events carry the charge id, not its balance transaction, so the fee is
  usually unknown then: the payment entry is posted without it at once (it never waits for
  Stripe), and the hourly :func:`accounting_fees_collect` asks Stripe for the balance
  transaction (``payment_intent_retrieve``, expanded) and posts the fee entry.
- **refund** ``refund:<payment id>:<cumulative refunded cents>`` (ON_REFUNDED hook, with the
  cents added): Dr 4000 and Dr each tax account, Cr 1100 the refund. The refund is split in
  proportion to what is left of each part (revenue, each tax) after earlier refunds, in
  whole cents by largest remainder, so each entry balances exactly and a full refund
  reverses the payment's revenue and tax to the cent. Stripe keeps its fee on a refund: no
  fee line.
- **dispute opened** ``dispute:<stripe dispute id>:opened``: Dr 1200 / Cr 1100 the disputed
  amount (Stripe withdraws it from the balance).
- **dispute closed** ``dispute:<stripe dispute id>:closed``: won, Dr 1100 / Cr 1200 (the funds
  come back); lost, Dr 5200 / Cr 1200. Tax already remitted on a lost dispute stays payable
  here: a bad-debt adjustment (ETA s. 231) is the accountant's decision. Stripe's dispute fee
  is not posted (it is not part of what the disputes app reports).

The disputes app's ``ON_DISPUTE_OPENED`` / ``ON_DISPUTE_CLOSED`` hooks post them
(:func:`accounting_hooks_install`). Only disputes that withdraw funds are posted: an
inquiry (``warning_*``) moves no money.
Hooks run inside the transaction that changed the payment, holding its row lock; the entry
is written in that transaction, so a state change and its entry commit together or not at
all, and a replayed or concurrent event finds the source key taken and posts nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from payments.models import Account, EntryKind, JournalEntry, JournalLine, Payment, TaxType

logger = logging.getLogger("payments")

#: The account each tax type is payable to.
TAX_ACCOUNTS = {TaxType.GST: Account.GST_HST_PAYABLE, TaxType.HST: Account.GST_HST_PAYABLE,
                TaxType.QST: Account.QST_PAYABLE, TaxType.PST: Account.PST_PAYABLE,
                TaxType.RST: Account.RST_PAYABLE}
#: A fee is looked for once the balance transaction exists, and for this long.
FEE_LOOKUP_AFTER = timedelta(minutes=10)
FEE_LOOKUP_FOR = timedelta(days=30)
DISPUTE_OUTCOMES = {"won": EntryKind.DISPUTE_WON, "lost": EntryKind.DISPUTE_LOST}


class AccountingError(Exception):
    """An entry cannot be posted as asked (it does not balance, or the payment's amounts
    do not add up)."""


class UnbalancedEntry(AccountingError, ValueError):
    """Debits and credits differ, a line is both or neither, or fewer than two lines."""


@dataclass(frozen=True)
class Posting:
    """One line to post: a debit or a credit to ``account``."""

    account: str
    debit_cents: int = 0
    credit_cents: int = 0
    tax_type: str = ""
    province: str = ""


@dataclass(frozen=True)
class Part:
    """A part of what the client paid: revenue, or one tax."""

    account: str
    tax_type: str
    province: str
    cents: int

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.account, self.tax_type, self.province)


def split_cents(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights``, in whole cents that add up to it: each
    share's floor, then one cent more to the largest remainders (the earlier on a tie).
    No share exceeds its weight when ``total`` ≤ ``sum(weights)``.

    Raises:
      ValueError: a negative amount, or a total to split over weights summing to 0.
    """
    weight_sum = sum(weights)
    if total < 0 or any(weight < 0 for weight in weights):
        raise ValueError("negative amounts cannot be split")
    if total and not weight_sum:
        raise ValueError(f"nothing to split {total} over")
    if not total:
        return [0] * len(weights)
    shares = [total * weight // weight_sum for weight in weights]
    order = sorted(range(len(weights)), key=lambda i: (-(total * weights[i] % weight_sum), i))
    for index in order[:total - sum(shares)]:
        shares[index] += 1
    return shares


def payment_parts(payment: Payment) -> list[Part]:
    """What ``payment.amount_cents`` is made of: revenue, then each tax, non-zero parts.

    Raises:
      AccountingError: the tax exceeds the amount paid.
    """
    province = payment.order.province
    tax_lines = list(payment.tax_lines.all())
    if tax_lines:
        taxes = [Part(TAX_ACCOUNTS[line.tax_type], line.tax_type, line.province,
                      line.amount_cents) for line in tax_lines]
    else:
        taxes = [Part(Account.TAX_UNALLOCATED, "", province, payment.tax_cents)]
    tax_cents = sum(part.cents for part in taxes)
    if tax_cents > payment.amount_cents:
        raise AccountingError(f"payment #{payment.pk}: tax {tax_cents} exceeds the amount "
                              f"{payment.amount_cents}")
    parts = [Part(Account.REVENUE, "", province, payment.amount_cents - tax_cents), *taxes]
    return [part for part in parts if part.cents]


def journal_entry_post(*, payment: Payment, kind: str, source_key: str,
                       lines: list[Posting], posted_at: datetime | None = None
                       ) -> JournalEntry | None:
    """Write one balanced entry of ``lines`` (zero lines dropped) for ``payment``. Returns
    it, or None when ``source_key`` was posted before (nothing is written then). Must run
    in a transaction: the database checks the balance at commit.

    Raises:
      UnbalancedEntry: the lines do not balance, or fewer than two are left.
    """
    lines = [line for line in lines if line.debit_cents or line.credit_cents]
    for line in lines:
        if (line.debit_cents < 0 or line.credit_cents < 0
                or bool(line.debit_cents) == bool(line.credit_cents)):
            raise UnbalancedEntry(f"{source_key}: a line is a debit or a credit ({line})")
    debits = sum(line.debit_cents for line in lines)
    credits = sum(line.credit_cents for line in lines)
    if len(lines) < 2 or debits != credits:
        raise UnbalancedEntry(f"{source_key}: debits {debits}, credits {credits} over "
                              f"{len(lines)} line(s)")
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {JournalEntry._meta.db_table} (kind, payment_id, source_key, "
            "currency, posted_at, created_at) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (source_key) DO NOTHING RETURNING id",
            [kind, payment.pk, source_key, payment.currency, posted_at or now, now])
        inserted = cursor.fetchone()
        if inserted is None:
            return None
        JournalLine.objects.bulk_create(
            JournalLine(entry_id=inserted[0], account=line.account,
                        debit_cents=line.debit_cents, credit_cents=line.credit_cents,
                        tax_type=line.tax_type, province=line.province, created_at=now)
            for line in lines)
    return JournalEntry.objects.get(pk=inserted[0])


def journal_payment_post(*, payment: Payment) -> JournalEntry | None:
    """The entry of a payment that succeeded (see the module's rules)."""
    parts = payment_parts(payment)
    fee = payment.fee_cents
    lines = [Posting(Account.STRIPE_BALANCE, debit_cents=payment.amount_cents - fee),
             Posting(Account.STRIPE_FEES, debit_cents=fee),
             *(Posting(part.account, credit_cents=part.cents, tax_type=part.tax_type,
                       province=part.province) for part in parts)]
    return journal_entry_post(payment=payment, kind=EntryKind.PAYMENT,
                              source_key=f"payment:{payment.pk}", lines=lines)


def journal_refund_post(*, payment: Payment, added_cents: int) -> JournalEntry | None:
    """The entry of ``added_cents`` more refunded on ``payment`` (its ``refunded_cents``
    already the new total), prorated over what is left of each part.

    Raises:
      AccountingError: more refunded than is left of the payment.
    """
    parts = payment_parts(payment)
    refunded = {
        (row["account"], row["tax_type"], row["province"]): row["cents"]
        for row in JournalLine.objects.filter(entry__payment=payment,
                                              entry__kind=EntryKind.REFUND)
        .values("account", "tax_type", "province").annotate(cents=Sum("debit_cents"))}
    left = [max(part.cents - refunded.get(part.key, 0), 0) for part in parts]
    if added_cents > sum(left):
        raise AccountingError(f"payment #{payment.pk}: refund of {added_cents} exceeds the "
                              f"{sum(left)} left")
    shares = split_cents(added_cents, left)
    lines = [*(Posting(part.account, debit_cents=share, tax_type=part.tax_type,
                       province=part.province) for part, share in zip(parts, shares, strict=True)),
             Posting(Account.STRIPE_BALANCE, credit_cents=added_cents)]
    return journal_entry_post(payment=payment, kind=EntryKind.REFUND,
                              source_key=f"refund:{payment.pk}:{payment.refunded_cents}",
                              lines=lines)


def journal_fee_post(*, payment: Payment) -> JournalEntry | None:
    """The entry of Stripe's fee learned after the payment was posted."""
    return journal_entry_post(
        payment=payment, kind=EntryKind.FEE, source_key=f"fee:{payment.pk}",
        lines=[Posting(Account.STRIPE_FEES, debit_cents=payment.fee_cents),
               Posting(Account.STRIPE_BALANCE, credit_cents=payment.fee_cents)])


def journal_dispute_opened(*, payment: Payment, amount_cents: int,
                           stripe_dispute_id: str) -> JournalEntry | None:
    """Stripe withdrew ``amount_cents`` for dispute ``stripe_dispute_id``."""
    if amount_cents <= 0 or not stripe_dispute_id:
        raise AccountingError("a dispute needs an amount and its Stripe id")
    return journal_entry_post(
        payment=payment, kind=EntryKind.DISPUTE_OPENED,
        source_key=f"dispute:{stripe_dispute_id}:opened",
        lines=[Posting(Account.DISPUTED_FUNDS, debit_cents=amount_cents),
               Posting(Account.STRIPE_BALANCE, credit_cents=amount_cents)])


def journal_dispute_closed(*, payment: Payment, amount_cents: int, stripe_dispute_id: str,
                           outcome: str) -> JournalEntry | None:
    """Dispute ``stripe_dispute_id`` closed ``outcome`` ("won" or "lost"). Its opening is
    posted first if it never was (idempotent), so 1200 always clears.

    Raises:
      AccountingError: another outcome (an inquiry's moves no money), or no amount.
    """
    if outcome not in DISPUTE_OUTCOMES:
        raise AccountingError(f"dispute outcome {outcome!r} is not won or lost")
    with transaction.atomic():
        journal_dispute_opened(payment=payment, amount_cents=amount_cents,
                               stripe_dispute_id=stripe_dispute_id)
        debit = Account.STRIPE_BALANCE if outcome == "won" else Account.DISPUTE_LOSSES
        return journal_entry_post(
            payment=payment, kind=DISPUTE_OUTCOMES[outcome],
            source_key=f"dispute:{stripe_dispute_id}:closed",
            lines=[Posting(debit, debit_cents=amount_cents),
                   Posting(Account.DISPUTED_FUNDS, credit_cents=amount_cents)])


# --- Stripe's fee, when the payment was posted without it --------------------------------

def _fee_of_intent(intent: dict[str, Any]) -> int | None:
    charge = intent.get("latest_charge")
    balance = charge.get("balance_transaction") if isinstance(charge, dict) else None
    fee = balance.get("fee") if isinstance(balance, dict) else None
    return fee if isinstance(fee, int) else None


def payments_missing_fee(*, now: datetime, limit: int) -> list[int]:
    """Ids of payments whose entry was posted without a fee and that have no fee entry,
    settled between :data:`FEE_LOOKUP_FOR` and :data:`FEE_LOOKUP_AFTER` ago."""
    posted_without_fee = (JournalEntry.objects.filter(kind=EntryKind.PAYMENT)
                          .exclude(lines__account=Account.STRIPE_FEES)
                          .values("payment_id"))
    with_fee_entry = JournalEntry.objects.filter(kind=EntryKind.FEE).values("payment_id")
    return list(Payment.objects.filter(
        pk__in=posted_without_fee, succeeded_at__lt=now - FEE_LOOKUP_AFTER,
        succeeded_at__gt=now - FEE_LOOKUP_FOR).exclude(pk__in=with_fee_entry)
        .order_by("pk").values_list("pk", flat=True)[:limit])


def accounting_fees_collect(*, now: datetime | None = None, limit: int = 200
                            ) -> dict[str, int]:
    """Ask Stripe for the fee of each payment posted without one and post it. Returns
    counts: checked, posted, unavailable (no balance transaction yet: asked again next
    hour), refused (Stripe answered 4xx for it).

    Raises:
      StripeUnavailable: Stripe cannot be reached (the actor retries later).
    """
    from payments.stripe_api import StripeRefused, payment_intent_retrieve

    now = now or timezone.now()
    counts = {"checked": 0, "posted": 0, "unavailable": 0, "refused": 0}
    for payment_id in payments_missing_fee(now=now, limit=limit):
        counts["checked"] += 1
        payment = Payment.objects.get(pk=payment_id)
        fee = payment.fee_cents or None
        if fee is None:
            try:  # outside any transaction: no row is locked while Stripe answers
                fee = _fee_of_intent(payment_intent_retrieve(payment.stripe_payment_intent_id))
            except StripeRefused:
                counts["refused"] += 1
                logger.warning("stripe refused the fee lookup", extra={"payment": payment_id})
                continue
        if not fee:
            counts["unavailable"] += 1
            continue
        with transaction.atomic():
            locked = Payment.objects.select_for_update().get(pk=payment_id)
            if locked.fee_cents == 0:
                locked.fee_cents = fee
                locked.save(update_fields=["fee_cents", "updated_at"])
            counts["posted"] += journal_fee_post(payment=locked) is not None
    logger.info("stripe fees collected", extra=counts)
    return counts


# --- The hooks ---------------------------------------------------------------------------

def _on_succeeded(payment: Payment) -> None:
    journal_payment_post(payment=payment)


def _on_refunded(payment: Payment, added_cents: int) -> None:
    journal_refund_post(payment=payment, added_cents=added_cents)


def accounting_hooks_install() -> None:
    """Post entries from the payment state changes (PaymentsConfig.ready)."""
    from payments.services.disputes import ON_DISPUTE_CLOSED, ON_DISPUTE_OPENED
    from payments.services.intents import ON_REFUNDED, ON_SUCCEEDED

    for hooks, hook in ((ON_SUCCEEDED, _on_succeeded), (ON_REFUNDED, _on_refunded),
                        (ON_DISPUTE_OPENED, _on_dispute_opened),
                        (ON_DISPUTE_CLOSED, _on_dispute_closed)):
        if hook not in hooks:
            hooks.append(hook)


def _on_dispute_opened(dispute) -> None:
    if not dispute.status.startswith("warning_"):  # an inquiry withdraws nothing
        journal_dispute_opened(payment=dispute.payment, amount_cents=dispute.amount_cents,
                               stripe_dispute_id=dispute.stripe_dispute_id)


def _on_dispute_closed(dispute) -> None:
    if dispute.outcome in ("won", "lost"):
        journal_dispute_closed(payment=dispute.payment, amount_cents=dispute.amount_cents,
                               stripe_dispute_id=dispute.stripe_dispute_id,
                               outcome=dispute.outcome)
