"""Writes of the notifications app, one module per sub-domain:

- ``sending``: :func:`sending.send_email`, the one way any app sends email: checks,
  limits, the queued ``EmailLog`` row, the job.
- ``delivery``: ``email_deliver``, what ``send_email_task`` runs: claim, render, send
  through ``notifications.esp``, record the outcome.
- ``consent``: email preferences and the one-click unsubscribe.
- ``suppression``: the list of addresses never sent to, and the ESPs' bounce webhooks.
- ``digest``: the daily digest of unread in-app notifications.
- ``accounts``: what the verification and password-reset links do.
- ``sql``: the measured plain SQL of the email hot paths.
"""
