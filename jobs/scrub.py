"""Remove personal data from text that leaves an actor: exception messages, tracebacks, logs.

Jobs receive ids, but exception messages and third-party errors often quote what they were
given ("invalid address jane@example.com"). Everything a failed job stores and every log
line Dramatiq writes passes through :func:`scrub` first. Names cannot be recognised by a
pattern, which is why actors take ids and why Dramatiq's log lines never show arguments
(:class:`DramatiqLogFilter`).
"""

import logging
import re
from typing import Any

from dramatiq import Message
from dramatiq.broker import MessageProxy

EMAIL = "[email]"
PHONE = "[phone]"
CARD = "[card-number]"
SECRET = "[secret]"
REDACTED = "[redacted]"
ARGUMENT = "[argument]"

# key=value / key: value where the key names a credential, and HTTP auth schemes.
_CREDENTIAL = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|refresh[_-]?token|token|secret|password|"
    r"passwd|pwd|authorization|auth|session(?:id)?|signature|sig)\b[\"']?\s*[:=]\s*"
    r"(?:bearer\s+|basic\s+)?[\"']?)[^\s\"',;&)}\[\]]+"
)
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# 13–19 digits, optionally grouped by spaces or dashes, passing the Luhn check: the shape of
# a payment card (the Luhn check spares millisecond timestamps and other long numbers).
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
# North American numbers in their usual spellings, and any +country number.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?![\w-])"
    r"|\+\d[\d ().-]{7,}\d(?!\w)"
)

# Long random-looking strings (API keys, JWTs, reset tokens, Fernet tokens): 20+ token
# characters with at least one digit and one letter. Canonical UUIDs are left alone: they
# are the message and row ids operators need to correlate a failure, and Jobsite never
# uses them as secrets (tokens are stored as hashes of random strings).
_LONG_TOKEN = re.compile(r"(?<![\w/+=.-])[A-Za-z0-9_\-+/=.]{20,}(?![\w/+=.-])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_HAS_DIGIT = re.compile(r"\d")
_HAS_LETTER = re.compile(r"[A-Za-z]")


_PATH_SEPARATORS = re.compile(r"[/.]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _looks_random(text: str) -> bool:
    return bool(_HAS_DIGIT.search(text) and _HAS_LETTER.search(text))


def _has_random_piece(text: str) -> bool:
    return any(len(p) >= 16 and _looks_random(p) for p in _PATH_SEPARATORS.split(text))


def _scrub_token(match: re.Match[str]) -> str:
    text = match.group(0)
    if _UUID.fullmatch(text):
        return text
    if "/" in text:
        # A file path in a traceback is made of short words; a secret that happens to
        # contain slashes (standard base64) has long random pieces.
        return SECRET if _has_random_piece(text) else text
    if "." in text and all(_IDENTIFIER.fullmatch(p) for p in text.split(".")):
        # A dotted Python name (urllib3.exceptions.NewConnectionError) is what staff need
        # to tell one failure from another; a JWT's pieces are long and random.
        return SECRET if _has_random_piece(text) else text
    return SECRET if _looks_random(text) else text


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = int(char)
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _scrub_card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return CARD if _luhn_valid(digits) else match.group(0)


def argument_values(*values: Any) -> list[str]:
    """The strings (3+ characters) inside job arguments, longest first, for :func:`scrub`."""
    found: set[str] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if len(value) >= 3:
                found.add(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return sorted(found, key=len, reverse=True)


def scrub(text: str, *, max_length: int | None = None, known: list[str] | None = None) -> str:
    """Return ``text`` with emails, phone and card numbers, tokens and secrets replaced.

    ``known`` are values known to be sensitive, such as the string arguments of the job
    that failed (see :func:`argument_values`): a name has no pattern, but an exception
    message quoting the job's own ``first_name`` argument is caught this way. ``max_length``
    truncates the input first, so a huge exception message costs little.
    """
    if not text:
        return text
    if max_length is not None and len(text) > max_length:
        text = text[:max_length] + "…"
    for value in known or ():
        text = text.replace(value, ARGUMENT)
    # Order matters: credentials before the generic long-token rule rewrites their values,
    # cards before phones (a card number contains phone-shaped runs).
    text = _CREDENTIAL.sub(r"\1" + REDACTED, text)
    text = _AUTH_SCHEME.sub(r"\1 " + REDACTED, text)
    text = _EMAIL.sub(EMAIL, text)
    text = _CARD.sub(_scrub_card, text)
    text = _PHONE.sub(PHONE, text)
    return _LONG_TOKEN.sub(_scrub_token, text)


def describe_message(message: Message | MessageProxy) -> str:
    """A message as logs may show it: actor, queue and id, never its arguments."""
    return f"{message.actor_name} on {message.queue_name} ({message.message_id})"


def _safe_arg(value: Any, known: list[str]) -> Any:
    if isinstance(value, Message | MessageProxy):
        return describe_message(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(str(value), max_length=4000, known=known)


class DramatiqLogFilter(logging.Filter):
    """Strip arguments and personal data from Dramatiq's own log records.

    Dramatiq logs ``"Failed to process message %s with unhandled exception."`` with the
    message's repr, which contains its arguments, and attaches the traceback, whose last
    line is the exception message. Installed on the log handler (a logger's filters do not
    apply to records of its child loggers), it rewrites records of the ``dramatiq`` and
    ``django_dramatiq`` loggers: messages become ``actor on queue (id)``, every other argument
    and the traceback are scrubbed. Records of other loggers pass unchanged.
    """

    def __init__(self, name: str = "", prefixes: tuple[str, ...] = ("dramatiq", "django_dramatiq")):
        super().__init__(name)
        self.prefixes = tuple(prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        args = record.args if isinstance(record.args, tuple) else (record.args,)
        # The failing message's own arguments are what its exception most likely quotes.
        known = argument_values(*(
            [arg.args, arg.kwargs] for arg in args if isinstance(arg, Message | MessageProxy)
        ))
        if record.args:
            try:
                record.msg = str(record.msg) % tuple(_safe_arg(arg, known) for arg in args)
            except (TypeError, ValueError):
                record.msg = scrub(str(record.msg), known=known)
            record.args = None
        record.msg = scrub(str(record.msg), known=known)
        if record.exc_info and record.exc_info[0] is not None:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrub(formatted, known=known)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text, known=known)
        return True


class ExceptionTextFilter(logging.Filter):
    """Scrub the exception text of every log record, whatever its logger.

    An exception's message may quote what it was given — a request body with an address,
    a provider's reply — and a log line prints it in full. Installed on the log handler,
    this formats the traceback once, through :func:`scrub`, and keeps only that text
    (``exc_text``). Records without an exception pass unchanged, at no cost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


# A URL path in a log message ("Not Found: /email/unsubscribe/<token>/", or the request
# line of runserver's access log), up to its query string.
_URL_PATH = re.compile(r"(?<![\w.])/[^\s\"'<>?]*(\?[^\s\"'<>]*)?")


def scrub_path(path: str) -> str:
    """A URL path as logs may show it: a query string (where links carry tokens) replaced,
    each random-looking segment (a signed token, a reset token) replaced."""
    path, query_mark, _ = path.partition("?")
    segments = "/".join(scrub(segment) for segment in path.split("/"))
    return segments + (f"?{REDACTED}" if query_mark else "")


def scrub_urls(text: str) -> str:
    """:func:`scrub` for text that quotes URL paths: each path by :func:`scrub_path`."""
    parts, end = [], 0
    for match in _URL_PATH.finditer(text):
        parts += [scrub(text[end:match.start()]), scrub_path(match.group(0))]
        end = match.end()
    parts.append(scrub(text[end:]))
    return "".join(parts)


class RequestLogFilter(logging.Filter):
    """Keep tokens in URLs out of Django's own request log lines.

    ``django.request`` logs every 4xx/5xx as ``"Not Found: <path>"`` with the request
    attached, which a JSON log line would print with its query string; the unsubscribe,
    verification and reset links carry their tokens in the path or the query string.
    Installed on the log handler, it rewrites records of ``django.request``,
    ``django.security`` and ``django.server``: paths go through :func:`scrub_path`, the
    rest of the text through :func:`scrub`, and the request becomes ``"<method> <path>"``.
    """

    prefixes = ("django.request", "django.security", "django.server")

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = scrub_urls(message)
        record.args = None
        request = getattr(record, "request", None)
        if request is not None and hasattr(request, "path"):
            record.request = f"{getattr(request, 'method', '')} {scrub_path(request.path)}"
        return True


# --- Exception chains ------------------------------------------------------------------------

CHAIN_LIMIT = 8


def _exception_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _exception_status(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(status, int):
        return f" (HTTP {status})"
    code = getattr(exc, "smtp_code", None)
    return f" (SMTP {code})" if isinstance(code, int) else ""


def exception_chain(exc: BaseException) -> str:
    """The types of an exception and of what caused it, with HTTP and SMTP statuses, and
    no message text: ``anymail.exceptions.AnymailRequestsAPIError <-
    requests.exceptions.ConnectionError <- urllib3.exceptions.NewConnectionError <-
    ConnectionRefusedError``. Enough to tell a refused connection from an ESP's 5xx
    without any of the text that may quote personal data."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < CHAIN_LIMIT:
        seen.add(id(current))
        parts.append(_exception_name(current) + _exception_status(current))
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__)
    return " <- ".join(parts)
