"""Monitoring of the job platform: job statistics (``stats``, on the bucket layout of
``buckets``), the broker's own state (``broker_state``), Prometheus metrics (``metrics``),
readiness (``health``) and the admin dashboard (``dashboard``)."""
