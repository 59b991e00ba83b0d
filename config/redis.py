"""Turn ``REDIS_URL`` into keyword arguments for ``redis.Redis``.

One function serves the Dramatiq broker and every Redis client Jobsite opens, so AUTH
(``redis://:password@host`` or ``redis://user:password@host``) and TLS (``rediss://``, with
an optional CA file) are configured once.
"""

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_SCHEMES = {"redis": False, "rediss": True}


def redis_connection_options(url: str, *, ca_file: str | None = None) -> dict[str, Any]:
    """Return ``redis.Redis`` keyword arguments for ``url``.

    Raises:
      ValueError: the URL's scheme is not ``redis`` or ``rediss``, or its database is not
        a number.
    """
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"REDIS_URL must start with redis:// or rediss://, not {parts.scheme}://")
    db_text = parts.path.lstrip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    if not db_text.isdigit():
        raise ValueError("REDIS_URL's database must be a number, e.g. redis://host:6379/0")
    options: dict[str, Any] = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "db": int(db_text),
        # Survive a Redis restart: reconnect instead of failing every later call.
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if _SCHEMES[parts.scheme]:
        options["ssl"] = True
        options["ssl_cert_reqs"] = "required"
        if ca_file:
            options["ssl_ca_certs"] = ca_file
    return options
