"""The manual end-of-retention removal of payment records (no automatic path)."""

from django.db import connection


def allow_payment_delete() -> None:
    """Let the current transaction delete payment rows (the manual removal after the
    7-year retention period; no automatic path calls this). Must run inside
    ``transaction.atomic()``: the permission ends with the transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("allow_payment_delete() needs a transaction")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('jobsite.allow_payment_delete', 'on', true)")
