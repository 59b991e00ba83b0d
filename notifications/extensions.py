"""What other apps add to an email kind at send time, without notifications importing them.

An app registers, once at start-up (its ``AppConfig.ready``), for one kind:

- ``values(context, language)``: extra template values, read at render time from the ids
  the context holds (a log row's context holds ids and small values only);
- ``attachments(context, language)``: the files to attach, produced at send time (e.g.
  fetched from object storage by an id in the context);
- ``sample_values``: what the template check (``notifications.E001``) renders with, so the
  templates' branches for those values are checked too.

Both callables may raise to make the delivery retry (a file not stored yet, a database
blip): the delivery treats it as any failure of that attempt.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str


ValuesFor = Callable[[dict[str, Any], str], dict[str, Any]]
AttachmentsFor = Callable[[dict[str, Any], str], list[Attachment]]


@dataclass(frozen=True)
class EmailExtension:
    values: ValuesFor | None = None
    attachments: AttachmentsFor | None = None
    sample_values: dict[str, Any] = field(default_factory=dict)


_EXTENSIONS: dict[str, EmailExtension] = {}


def email_extension_register(kind: str, *, values: ValuesFor | None = None,
                             attachments: AttachmentsFor | None = None,
                             sample_values: dict[str, Any] | None = None) -> None:
    """Register what ``kind``'s emails get at send time (registering again replaces)."""
    _EXTENSIONS[str(kind)] = EmailExtension(values=values, attachments=attachments,
                                            sample_values=dict(sample_values or {}))


def email_extension(kind: str) -> EmailExtension:
    """``kind``'s extension (an empty one when no app registered any)."""
    return _EXTENSIONS.get(str(kind), EmailExtension())


def email_values(kind: str, context: dict[str, Any], language: str) -> dict[str, Any]:
    extension = email_extension(kind)
    return extension.values(context, language) if extension.values else {}


def email_attachments(kind: str, context: dict[str, Any], language: str) -> list[Attachment]:
    extension = email_extension(kind)
    return extension.attachments(context, language) if extension.attachments else []
