"""System check: every email kind has every part in every language, and renders cleanly.

For each kind × language: the subject, text and HTML templates exist and compile;
rendering them with the kind's sample context leaves no unresolved variable; the subject
is one line; the HTML is well formed (every opened element is closed, in order).
"""

from html.parser import HTMLParser

from django.core import checks
from django.template import TemplateDoesNotExist, TemplateSyntaxError

from marketplace.models import User
from notifications.extensions import email_extension
from notifications.kinds import KINDS, EmailContentError
from notifications.models import EmailKind, PushKind
from notifications.push_kinds import PUSH_KINDS
from notifications.rendering import (
    LANGUAGES,
    PARTS,
    PUSH_MAX_LENGTH,
    PUSH_PARTS,
    UNRESOLVED_MARKER,
    email_engine,
    push_template_name,
    render_email,
    render_push,
    template_name,
)

# Elements that never have a closing tag.
VOID_ELEMENTS = frozenset(
    "area base br col embed hr img input link meta source track wbr".split()
)
SAMPLE_DIGEST_ITEMS = [
    {"title": "New quote on Fix the kitchen sink", "body": "Pro Plumbing sent a quote.",
     "is_important": True},
    {"title": "New message", "body": "", "is_important": False},
]


class _WellFormedness(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if tag in VOID_ELEMENTS:
            return
        if not self.stack or self.stack[-1] != tag:
            expected = self.stack[-1] if self.stack else "nothing"
            self.problems.append(f"</{tag}> closes {expected}")
            if tag in self.stack:
                del self.stack[self.stack.index(tag):]
        else:
            self.stack.pop()


def html_problems(html: str) -> list[str]:
    """Well-formedness problems of ``html`` (empty when it is well formed)."""
    parser = _WellFormedness()
    parser.feed(html)
    parser.close()
    if not html.lstrip().lower().startswith("<!doctype html>"):
        parser.problems.append("missing <!DOCTYPE html>")
    return parser.problems + [f"<{tag}> never closed" for tag in parser.stack]


def _sample_user(language: str) -> User:
    return User(pk=1, email="sample@example.invalid", first_name="Sam",
                preferred_language=language, password="!")


def _load_problems(engine, names: list[str]) -> list[str]:
    """What is wrong with loading each template: missing, or not compiling."""
    problems = []
    for name in names:
        try:
            engine.get_template(name)
        except TemplateDoesNotExist:
            problems.append(f"{name} is missing")
        except TemplateSyntaxError as exc:
            problems.append(f"{name} does not compile: {exc}")
    return problems


def template_problems() -> list[str]:
    """Every problem of every kind × language, as readable sentences."""
    problems: list[str] = []
    engine = email_engine(strict=True)
    for kind in EmailKind:
        spec = KINDS[kind]
        for language in LANGUAGES:
            broken = _load_problems(engine, [template_name(kind, language, part)
                                             for part in PARTS])
            problems += broken
            if broken:
                continue
            try:
                rendered = render_email(
                    kind=kind, user=_sample_user(language), context=spec.sample_context,
                    unsubscribe_url="https://example.invalid/email/unsubscribe/t/",
                    strict=True, extra_values={"items": SAMPLE_DIGEST_ITEMS,
                                               **email_extension(kind).sample_values},
                )
            except EmailContentError as exc:
                problems.append(f"{kind}/{language}: {exc}")
                continue
            marker = UNRESOLVED_MARKER.split("%s")[0]
            for part, text in (("subject", rendered.subject), ("text", rendered.text),
                               ("html", rendered.html)):
                if marker in text:
                    start = text.index(marker) + len(marker)
                    variable = text[start:text.index("@@", start)]
                    problems.append(f"{kind}/{language} {part}: unresolved {{{{ {variable} }}}}")
            problems += [f"{kind}/{language} html: {p}" for p in html_problems(rendered.html)]
    return problems


@checks.register(checks.Tags.templates)
def check_email_templates(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(problem, id="notifications.E001", hint="Fix templates/email/.")
        for problem in template_problems()
    ]


def push_template_problems() -> list[str]:
    """Every problem of every push kind × language."""
    problems: list[str] = []
    engine = email_engine(strict=True)
    marker = UNRESOLVED_MARKER.split("%s")[0]
    for kind in PushKind:
        spec = PUSH_KINDS[kind]
        for language in LANGUAGES:
            broken = _load_problems(engine, [push_template_name(kind, language, part)
                                             for part in PUSH_PARTS])
            problems += broken
            if broken:
                continue
            for first_name in ("Sam", ""):
                headings, contents = render_push(kind=kind, context=spec.sample_context,
                                                 first_name=first_name,
                                                 languages=(language,), strict=True)
                for part, text in (("heading", headings[language]),
                                   ("content", contents[language])):
                    if marker in text:
                        problems.append(f"push {kind}/{language} {part}: unresolved variable")
                    elif not text:
                        problems.append(f"push {kind}/{language} {part}: empty")
                    elif len(text) >= PUSH_MAX_LENGTH[part]:
                        problems.append(f"push {kind}/{language} {part}: too long")
    return problems


@checks.register(checks.Tags.templates)
def check_push_templates(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [
        checks.Error(problem, id="notifications.E002", hint="Fix templates/push/.")
        for problem in push_template_problems()
    ]
