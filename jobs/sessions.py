"""Sessions: rows in PostgreSQL (durable), read through a Redis cache.

Django's ``cached_db`` engine with one change: the cache is an accelerator, never a
dependency. When Redis is down, a session is read from and written to PostgreSQL and the
request goes on (Django's own engine would fail on the cache write after a miss); the
error is logged once per call, without the session key. The retention session cleanup
deletes expired rows in batches and their cache entries with them
(:func:`session_cache_delete`).
"""

import logging

from django.conf import settings
from django.contrib.sessions.backends import cached_db
from django.core.cache import caches

logger = logging.getLogger("jobs.sessions")


class SessionStore(cached_db.SessionStore):
    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception as exc:
            _cache_failed("read", exc)
            data = None
        if data is not None:
            return data
        row = self._get_session_from_db()
        if not row:
            return {}
        data = self.decode(row.session_data)
        try:
            self._cache.set(self.cache_key, data, self.get_expiry_age(expiry=row.expire_date))
        except Exception as exc:
            _cache_failed("write", exc)
        return data

    def exists(self, session_key):
        try:
            if session_key and (self.cache_key_prefix + session_key) in self._cache:
                return True
        except Exception as exc:
            _cache_failed("read", exc)
        return super(cached_db.SessionStore, self).exists(session_key)

    def save(self, must_create=False):
        super(cached_db.SessionStore, self).save(must_create)  # the database first
        try:
            self._cache.set(self.cache_key, self._session, self.get_expiry_age())
        except Exception as exc:
            _cache_failed("write", exc)

    def delete(self, session_key=None):
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key:
            session_cache_delete([session_key])


def _cache_failed(what: str, exc: Exception) -> None:
    logger.warning("session cache %s failed; using the database", what,
                   extra={"error": type(exc).__name__})


def session_cache_delete(session_keys: list[str]) -> None:
    """Drop the cached copies of these sessions (their rows are gone or going)."""
    if not session_keys:
        return
    cache = caches[settings.SESSION_CACHE_ALIAS]
    try:
        cache.delete_many([cached_db.KEY_PREFIX + key for key in session_keys])
    except Exception as exc:
        _cache_failed("delete", exc)
