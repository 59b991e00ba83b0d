"""Canadian sales tax: the seeded rates, the computation by province and date, and the lines
stored on a payment. Every expected amount is worked out by hand in the test."""

from datetime import date
from decimal import Decimal

import pytest
from django.db import IntegrityError, InternalError, transaction

from marketplace.models import Order, Province, User
from payments.models import Payment, PaymentTaxLine, TaxRate
from payments.tax import (
    TaxAlreadyRecorded,
    TaxJurisdictionUnknown,
    TaxRateMissing,
    payment_tax_record,
    tax_compute,
)

# After Nova Scotia's change of 2025-04-01: today's rates everywhere.
NOW = date(2026, 6, 1)


def lines(breakdown) -> list[tuple[str, Decimal, int, int]]:
    return [(line.tax_type, line.rate_percent, line.taxable_cents, line.amount_cents)
            for line in breakdown.lines]


@pytest.mark.django_db
def test_the_seeded_table_is_exactly_the_researched_rates():
    seeded = sorted((r.province, r.tax_type, r.rate_percent, r.effective_from)
                    for r in TaxRate.objects.all())
    start = date(2024, 1, 1)
    assert seeded == sorted([
        *[(code, "GST", Decimal("5"), start)
          for code in ("AB", "BC", "MB", "NT", "NU", "QC", "SK", "YT")],
        ("ON", "HST", Decimal("13"), start),
        ("NB", "HST", Decimal("15"), start),
        ("NL", "HST", Decimal("15"), start),
        ("PE", "HST", Decimal("15"), start),
        ("NS", "HST", Decimal("15"), start),
        ("NS", "HST", Decimal("14"), date(2025, 4, 1)),
        ("BC", "PST", Decimal("7"), start),
        ("SK", "PST", Decimal("6"), start),
        ("MB", "RST", Decimal("7"), start),
        ("QC", "QST", Decimal("9.975"), start),
    ])
    assert all(r.source for r in TaxRate.objects.all())


# 12,345 cents in every jurisdiction. By hand: 5 % = 617.25 -> 617; 13 % = 1,604.85 -> 1,605;
# 15 % = 1,851.75 -> 1,852; 14 % = 1,728.30 -> 1,728; 7 % = 864.15 -> 864;
# 6 % = 740.70 -> 741; 9.975 % = 1,231.41375 -> 1,231. (Truncating would give 1,604, 1,851
# and 740: half-up rounding is what makes ON, the 15 % provinces and SK right.)
GST = ("GST", Decimal("5"), 12_345, 617)
EVERY_JURISDICTION = {
    "AB": [GST],
    "BC": [GST, ("PST", Decimal("7"), 12_345, 864)],
    "MB": [GST, ("RST", Decimal("7"), 12_345, 864)],
    "NB": [("HST", Decimal("15"), 12_345, 1_852)],
    "NL": [("HST", Decimal("15"), 12_345, 1_852)],
    "NS": [("HST", Decimal("14"), 12_345, 1_728)],
    "NT": [GST],
    "NU": [GST],
    "ON": [("HST", Decimal("13"), 12_345, 1_605)],
    "PE": [("HST", Decimal("15"), 12_345, 1_852)],
    "QC": [GST, ("QST", Decimal("9.975"), 12_345, 1_231)],
    "SK": [GST, ("PST", Decimal("6"), 12_345, 741)],
    "YT": [GST],
}


def test_the_table_names_all_thirteen_jurisdictions():
    assert set(EVERY_JURISDICTION) == set(Province.values)
    assert len(EVERY_JURISDICTION) == 13


@pytest.mark.django_db
@pytest.mark.parametrize("province", sorted(EVERY_JURISDICTION))
def test_every_jurisdiction(province):
    expected = EVERY_JURISDICTION[province]
    expected_tax = sum(amount for *_, amount in expected)

    breakdown = tax_compute(province=province, subtotal_cents=12_345, on=NOW)

    assert lines(breakdown) == expected
    assert (breakdown.province, breakdown.on, breakdown.subtotal_cents) == (province, NOW, 12_345)
    assert breakdown.tax_cents == expected_tax
    assert breakdown.total_cents == 12_345 + expected_tax


@pytest.mark.django_db
def test_the_lines_sum_to_the_tax_rounded_per_line_not_on_the_combined_rate():
    # QC: 617 + 1,231 = 1,848, while 14.975 % of 12,345 = 1,848.64 would round to 1,849.
    breakdown = tax_compute(province="QC", subtotal_cents=12_345, on=NOW)
    assert [line.amount_cents for line in breakdown.lines] == [617, 1_231]
    assert breakdown.tax_cents == 1_848
    assert breakdown.total_cents == 14_193


@pytest.mark.django_db
@pytest.mark.parametrize(("province", "subtotal", "expected"), [
    ("AB", 10, [("GST", 1)]),  # 0.5 -> 1 (to even would give 0)
    ("ON", 50, [("HST", 7)]),  # 6.5 -> 7 (to even: 6)
    ("NB", 70, [("HST", 11)]),  # 10.5 -> 11 (to even: 10)
    ("QC", 6_000, [("GST", 300), ("QST", 599)]),  # 598.5 -> 599 (to even: 598)
])
def test_exactly_half_a_cent_rounds_up(province, subtotal, expected):
    breakdown = tax_compute(province=province, subtotal_cents=subtotal, on=NOW)
    assert [(line.tax_type, line.amount_cents) for line in breakdown.lines] == expected


@pytest.mark.django_db
def test_qst_is_on_the_price_excluding_gst():
    breakdown = tax_compute(province="QC", subtotal_cents=10_000, on=NOW)
    # 9.975 % of 10,000 = 997.5 -> 998; on price + GST (10,500) it would be 1,047.
    assert lines(breakdown) == [("GST", Decimal("5"), 10_000, 500),
                                ("QST", Decimal("9.975"), 10_000, 998)]
    assert breakdown.total_cents == 11_498  # Revenu Québec's example: $100 -> $114.98


@pytest.mark.django_db
@pytest.mark.parametrize(("on", "rate", "amount"), [
    (date(2024, 1, 1), Decimal("15"), 1_852),
    (date(2025, 3, 31), Decimal("15"), 1_852),
    (date(2025, 4, 1), Decimal("14"), 1_728),
    (date(2026, 12, 1), Decimal("14"), 1_728),
])
def test_nova_scotia_hst_by_date(on, rate, amount):
    breakdown = tax_compute(province="NS", subtotal_cents=12_345, on=on)
    assert lines(breakdown) == [("HST", rate, 12_345, amount)]


@pytest.mark.django_db
def test_a_rate_row_added_takes_effect_from_its_date_and_not_before():
    # given a computation made before the row exists (nothing may keep its answer)
    change = date(2027, 7, 1)
    assert tax_compute(province="ON", subtotal_cents=12_345, on=change).tax_cents == 1_605

    # when a hypothetical 12 % HST is recorded for Ontario from 2027-07-01
    TaxRate.objects.create(province="ON", tax_type="HST", rate_percent=Decimal("12"),
                           effective_from=change, source="test")

    # then 12 % of 12,345 = 1,481.40 -> 1,481 from that day, 13 % the day before
    assert lines(tax_compute(province="ON", subtotal_cents=12_345, on=change)) == [
        ("HST", Decimal("12"), 12_345, 1_481)]
    assert lines(tax_compute(province="ON", subtotal_cents=12_345, on=date(2027, 6, 30))) == [
        ("HST", Decimal("13"), 12_345, 1_605)]


@pytest.mark.django_db
def test_a_zero_rate_row_ends_a_tax():
    TaxRate.objects.create(province="BC", tax_type="PST", rate_percent=Decimal("0"),
                           effective_from=date(2028, 1, 1), source="test")
    assert lines(tax_compute(province="BC", subtotal_cents=12_345, on=date(2028, 1, 1))) == [
        GST]


@pytest.mark.django_db
def test_one_rate_per_province_type_and_date():
    with pytest.raises(IntegrityError), transaction.atomic():
        TaxRate.objects.create(province="NS", tax_type="HST", rate_percent=Decimal("13"),
                               effective_from=date(2025, 4, 1), source="duplicate")


@pytest.mark.django_db
@pytest.mark.parametrize("province", ["XX", "on", "", "QB"])
def test_an_unknown_province_is_refused(province):
    with pytest.raises(TaxJurisdictionUnknown, match="unknown province"):
        tax_compute(province=province, subtotal_cents=12_345, on=NOW)


@pytest.mark.django_db
def test_a_date_before_the_recorded_history_has_no_rate():
    with pytest.raises(TaxRateMissing, match="ON on 2023-12-31"):
        tax_compute(province="ON", subtotal_cents=12_345, on=date(2023, 12, 31))


@pytest.mark.django_db
def test_no_rate_row_at_all_is_an_error_not_zero_tax():
    TaxRate.objects.filter(province="YT").delete()
    with pytest.raises(TaxRateMissing):
        tax_compute(province="YT", subtotal_cents=12_345, on=NOW)


@pytest.mark.django_db
@pytest.mark.parametrize(("subtotal", "error"), [
    (Decimal("123.45"), TypeError), (123.45, TypeError), (True, TypeError), (-1, ValueError)])
def test_the_subtotal_is_a_non_negative_integer(subtotal, error):
    with pytest.raises(error):
        tax_compute(province="ON", subtotal_cents=subtotal, on=NOW)


@pytest.mark.django_db
def test_zero_subtotal_is_zero_tax():
    breakdown = tax_compute(province="QC", subtotal_cents=0, on=NOW)
    assert [line.amount_cents for line in breakdown.lines] == [0, 0]
    assert (breakdown.tax_cents, breakdown.total_cents) == (0, 0)


def order_and_payment(*, province: str, subtotal: int, tax: int) -> Payment:
    client = User.objects.create_user(f"payer-{province.lower()}@example.test")
    order = Order.objects.create(client=client, title="Deck", province=province,
                                 subtotal_cents=subtotal, tax_cents=tax,
                                 total_cents=subtotal + tax)
    return Payment.objects.create(order=order, payer=client, amount_cents=subtotal + tax,
                                  stripe_payment_intent_id=f"pi_{province}")


@pytest.mark.django_db
def test_the_lines_are_stored_on_the_payment():
    # given an order in Québec of 12,345 cents and its payment, no tax recorded yet
    payment = order_and_payment(province="QC", subtotal=12_345, tax=1_848)
    breakdown = tax_compute(province="QC", subtotal_cents=12_345, on=NOW)

    # when its tax is recorded
    payment_tax_record(payment=payment, breakdown=breakdown)

    # then one line per tax, and the payment's tax is their sum
    stored = [(line.province, line.tax_type, line.rate_percent, line.taxable_cents,
               line.amount_cents) for line in PaymentTaxLine.objects.filter(payment=payment)]
    assert stored == [("QC", "GST", Decimal("5"), 12_345, 617),
                      ("QC", "QST", Decimal("9.975"), 12_345, 1_231)]
    payment.refresh_from_db()
    assert payment.tax_cents == 1_848


@pytest.mark.django_db
def test_recording_the_same_breakdown_twice_stores_it_once():
    payment = order_and_payment(province="BC", subtotal=12_345, tax=1_481)
    breakdown = tax_compute(province="BC", subtotal_cents=12_345, on=NOW)

    first = payment_tax_record(payment=payment, breakdown=breakdown)
    again = payment_tax_record(payment=payment, breakdown=breakdown)

    assert sorted(line.pk for line in again) == sorted(line.pk for line in first)
    assert PaymentTaxLine.objects.filter(payment=payment).count() == 2


@pytest.mark.django_db
def test_a_different_breakdown_never_rewrites_what_was_recorded():
    payment = order_and_payment(province="NS", subtotal=12_345, tax=1_852)
    payment_tax_record(payment=payment, breakdown=tax_compute(
        province="NS", subtotal_cents=12_345, on=date(2025, 3, 31)))

    with pytest.raises(TaxAlreadyRecorded):
        payment_tax_record(payment=payment, breakdown=tax_compute(
            province="NS", subtotal_cents=12_345, on=date(2025, 4, 1)))

    assert list(PaymentTaxLine.objects.filter(payment=payment)
                .values_list("rate_percent", "amount_cents")) == [(Decimal("15"), 1_852)]
    payment.refresh_from_db()
    assert payment.tax_cents == 1_852


@pytest.mark.django_db
def test_a_breakdown_for_another_province_than_the_order_is_refused():
    payment = order_and_payment(province="ON", subtotal=12_345, tax=1_605)
    with pytest.raises(ValueError, match="for QC"):
        payment_tax_record(payment=payment, breakdown=tax_compute(
            province="QC", subtotal_cents=12_345, on=NOW))
    assert not PaymentTaxLine.objects.exists()


@pytest.mark.django_db
def test_the_database_allows_one_line_per_tax_type_and_never_deletes_one():
    payment = order_and_payment(province="ON", subtotal=12_345, tax=1_605)
    payment_tax_record(payment=payment, breakdown=tax_compute(
        province="ON", subtotal_cents=12_345, on=NOW))
    with pytest.raises(IntegrityError), transaction.atomic():
        PaymentTaxLine.objects.create(payment=payment, province="ON", tax_type="HST",
                                      rate_percent=Decimal("13"), taxable_cents=1,
                                      amount_cents=0)
    with pytest.raises((IntegrityError, InternalError), match="kept 7 years"), \
            transaction.atomic():
        PaymentTaxLine.objects.filter(payment=payment).delete()
    assert PaymentTaxLine.objects.filter(payment=payment).count() == 1
