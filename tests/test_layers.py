"""Imports between apps run one way (README "Architecture"): analytics → domain apps →
audit → jobs. Read from the source (every module but migrations), so a new import against
the grain fails here, not in review."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("jobs", "audit", "marketplace", "notifications", "media", "payments",
           "retention", "analytics", "bench", "config")
#: What each app may import. Among the domain apps the order is marketplace (the records)
#: ← notifications, media ← payments ← retention (which cleans all of them).
ALLOWED = {
    "jobs": set(),
    "audit": {"jobs"},
    "marketplace": {"audit", "jobs"},
    "notifications": {"marketplace", "audit", "jobs"},
    "media": {"marketplace", "audit", "jobs"},
    "payments": {"marketplace", "notifications", "audit", "jobs"},
    "retention": {"marketplace", "notifications", "media", "payments", "audit", "jobs"},
    "analytics": {"marketplace", "notifications", "media", "payments", "retention", "audit",
                  "jobs"},
}


def imported_apps(app: str) -> dict[str, str]:
    """Project apps that ``app`` imports → a file that does."""
    found = {}
    for path in (ROOT / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT and top != app:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_an_app_imports_only_the_apps_below_it(app):
    wrong = {other: path for other, path in imported_apps(app).items()
             if other not in ALLOWED[app]}
    assert wrong == {}, f"{app} imports against the layers: {wrong}"
