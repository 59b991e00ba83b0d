"""Canadian sales tax: the taxes of a province on a date, computed from the rate table
(:class:`payments.models.TaxRate`), and the lines stored on a payment.

Every tax is computed on the subtotal, the price before any tax: GST or HST, BC's and
Saskatchewan's PST and Manitoba's RST, and Québec's QST, which since 2013-01-01 is charged
on the price excluding the GST (not on price + GST). Each line is rounded to the cent, half
up (a half cent counts as a cent), and the tax is the sum of the rounded lines, so the
lines always add up to what the client is charged.

The temporary GST/HST holiday (2024-12-14 to 2025-02-15) is not modelled: it zero-rated
specific goods (children's clothing, toys, books, prepared food, Christmas trees...), never
contractors' services.

Rates are read from the table on every call (one indexed query, no cache), so a row added
by staff or by a test applies from its date at once, in every process.
"""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext

from django.db import transaction

from marketplace.models import Province
from payments.models import Payment, PaymentTaxLine, TaxRate, TaxType

ONE_CENT = Decimal(1)
HUNDRED = Decimal(100)
#: Lines in invoice order: the federal tax first, then the provincial one.
LINE_ORDER = {tax_type: index for index, tax_type in enumerate(TaxType.values)}


class TaxError(Exception):
    """Base of the errors of this module."""


class TaxJurisdictionUnknown(TaxError, ValueError):
    """The province is not one of the 13 codes of :class:`marketplace.models.Province`."""


class TaxRateMissing(TaxError, LookupError):
    """No rate is recorded for the province on that date (the table starts on 2024-01-01)."""


class TaxAlreadyRecorded(TaxError):
    """The payment already has tax lines, and they differ from the breakdown given."""


@dataclass(frozen=True)
class TaxLine:
    tax_type: str  # a TaxType value
    rate_percent: Decimal
    taxable_cents: int
    amount_cents: int


@dataclass(frozen=True)
class TaxBreakdown:
    province: str
    on: date
    subtotal_cents: int
    lines: tuple[TaxLine, ...]
    tax_cents: int  # the sum of the lines' amounts
    total_cents: int  # subtotal + tax


def tax_line_amount(*, taxable_cents: int, rate_percent: Decimal) -> int:
    """``taxable_cents × rate_percent / 100``, rounded to the cent, half up."""
    with localcontext(prec=50):  # exact for any bigint amount, whatever the caller's context
        amount = Decimal(taxable_cents) * rate_percent / HUNDRED
        return int(amount.quantize(ONE_CENT, rounding=ROUND_HALF_UP))


def tax_rates_in_effect(*, province: str, on: date) -> list[TaxRate]:
    """The rate row in effect on ``on`` for each tax type of ``province``: the latest row
    whose ``effective_from`` is on or before that day."""
    return list(TaxRate.objects.filter(province=province, effective_from__lte=on)
                .order_by("tax_type", "-effective_from").distinct("tax_type"))


def tax_compute(*, province: str, subtotal_cents: int, on: date) -> TaxBreakdown:
    """The taxes on ``subtotal_cents`` for a supply made in ``province`` on ``on``.

    :param province: a :class:`marketplace.models.Province` code ("ON", "QC"...).
    :param subtotal_cents: the price before tax, a non-negative integer.
    :param on: the day the tax becomes payable (the earlier of invoice and payment, under
        the CRA's transitional rules), a ``date``; a ``datetime`` is refused, since its day
        depends on a time zone the caller must choose.
    :raises TaxJurisdictionUnknown: ``province`` is not a Canadian province or territory code.
    :raises TaxRateMissing: no rate is recorded for ``province`` on ``on``.
    :raises TypeError, ValueError: ``subtotal_cents`` is not a non-negative ``int``, or ``on``
        is not a ``date``.
    """
    if province not in Province.values:
        raise TaxJurisdictionUnknown(f"unknown province or territory {province!r}; "
                                     f"expected one of {', '.join(Province.values)}")
    if not isinstance(subtotal_cents, int) or isinstance(subtotal_cents, bool):
        raise TypeError(f"subtotal_cents must be an int, not {type(subtotal_cents).__name__}")
    if subtotal_cents < 0:
        raise ValueError(f"subtotal_cents must not be negative ({subtotal_cents})")
    if not isinstance(on, date) or isinstance(on, datetime):
        raise TypeError(f"on must be a date, not {type(on).__name__}")
    rates = tax_rates_in_effect(province=province, on=on)
    if not rates:
        raise TaxRateMissing(f"no tax rate recorded for {province} on {on.isoformat()}")
    lines = tuple(
        TaxLine(tax_type=rate.tax_type, rate_percent=rate.rate_percent,
                taxable_cents=subtotal_cents,
                amount_cents=tax_line_amount(taxable_cents=subtotal_cents,
                                             rate_percent=rate.rate_percent))
        for rate in sorted(rates, key=lambda rate: LINE_ORDER[rate.tax_type])
        if rate.rate_percent > 0  # a zero row records the end of a tax: no line
    )
    tax_cents = sum(line.amount_cents for line in lines)
    return TaxBreakdown(province=province, on=on, subtotal_cents=subtotal_cents, lines=lines,
                        tax_cents=tax_cents, total_cents=subtotal_cents + tax_cents)


def payment_tax_record(*, payment: Payment, breakdown: TaxBreakdown) -> list[PaymentTaxLine]:
    """Store ``breakdown``'s lines on ``payment`` and set its ``tax_cents`` to their sum.

    Idempotent: recording the same breakdown again returns the lines already stored and
    writes nothing (one line per tax type, a unique key; the payment row is locked while it
    is checked). What was charged is never rewritten: a different breakdown for a payment
    that has lines is refused (a correction is a refund or an adjustment, not an edit).

    :raises ValueError: the breakdown is for another province than the payment's order.
    :raises TaxAlreadyRecorded: the payment has lines that differ from ``breakdown``.
    """
    wanted = sorted((breakdown.province, line.tax_type, line.rate_percent, line.taxable_cents,
                     line.amount_cents) for line in breakdown.lines)
    with transaction.atomic():
        locked = (Payment.objects.select_for_update(of=("self",)).select_related("order")
                  .get(pk=payment.pk))
        if locked.order.province != breakdown.province:
            raise ValueError(f"the breakdown is for {breakdown.province}, payment "
                             f"#{locked.pk}'s order is in {locked.order.province}")
        existing = list(locked.tax_lines.all())
        if existing:
            stored = sorted((line.province, line.tax_type, line.rate_percent,
                             line.taxable_cents, line.amount_cents) for line in existing)
            if stored != wanted:
                raise TaxAlreadyRecorded(f"payment #{locked.pk} already has other tax lines")
            return existing
        created = PaymentTaxLine.objects.bulk_create(
            PaymentTaxLine(payment=locked, province=breakdown.province, tax_type=line.tax_type,
                           rate_percent=line.rate_percent, taxable_cents=line.taxable_cents,
                           amount_cents=line.amount_cents)
            for line in breakdown.lines)
        locked.tax_cents = breakdown.tax_cents
        locked.save(update_fields=["tax_cents", "updated_at"])
    payment.tax_cents = breakdown.tax_cents
    return created
