"""Gunicorn's access log without the secrets email links and webhooks put in requests.

``Procfile``: ``gunicorn --logger-class config.access_log.ScrubbingLogger``. The request
line and referer go through :func:`jobs.scrub.scrub_urls` (the unsubscribe token is a
path segment, the verification token a query string), and the HTTP basic-auth user (half
of ``ANYMAIL_WEBHOOK_SECRET``) is not written.
"""

from gunicorn.glogging import Logger

from jobs.scrub import REDACTED, scrub_path, scrub_urls


class ScrubbingLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["r"] = scrub_urls(atoms["r"])
        atoms["U"] = scrub_path(atoms["U"] or "")
        atoms["q"] = REDACTED if atoms["q"] else ""
        atoms["f"] = scrub_urls(atoms["f"])
        if atoms["u"] != "-":
            atoms["u"] = REDACTED
        return atoms
