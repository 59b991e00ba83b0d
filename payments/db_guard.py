"""The database's own guard on payment records (CRA: kept 7 years), for the migrations
of every payment table: a row younger than 7 years cannot be deleted whoever connects, an
older one only by a transaction that set ``jobsite.allow_payment_delete``
(:func:`payments.services.allow_payment_delete`)."""

PAYMENT_DELETE_GUARD = """
CREATE FUNCTION payments_refuse_delete() RETURNS trigger AS $$
BEGIN
  IF OLD.created_at > now() - interval '7 years' THEN
    RAISE EXCEPTION 'payment records are kept 7 years (CRA): % row % is younger',
      TG_TABLE_NAME, OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  IF coalesce(current_setting('jobsite.allow_payment_delete', true), '') <> 'on' THEN
    RAISE EXCEPTION 'payment records are never deleted automatically (% row %)',
      TG_TABLE_NAME, OLD.id USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN OLD;
END $$ LANGUAGE plpgsql;
"""
DROP_PAYMENT_DELETE_GUARD = "DROP FUNCTION payments_refuse_delete();"


def guard_table(table: str) -> str:
    return (f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION payments_refuse_delete();")


def unguard_table(table: str) -> str:
    return f"DROP TRIGGER {table}_no_delete ON {table};"
