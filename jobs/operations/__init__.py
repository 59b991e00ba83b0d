"""The operations jobs (seed 12.8): log cleanup, the weekly performance report, the
security audit and the certificate expiry check. Their actors are in ``jobs.tasks``; each
report is stored once per run and emailed to staff (``reports``)."""
