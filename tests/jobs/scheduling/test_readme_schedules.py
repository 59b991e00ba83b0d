"""The README's schedule table says what is installed: every default schedule an app
declares is a row marked installed, with its cron and zone, and no row claims an
installed schedule that no app declares."""

import re
from pathlib import Path

from jobs.scheduling.selectors import default_schedule_specs

README = Path(__file__).resolve().parents[3] / "README.md"
ROW = re.compile(r"^\| (?P<name>[a-z0-9_-]+) \| [^|]+ \| `(?P<cron>[^`]+)` \| (?P<zone>[^|]+?) "
                 r"\| (?P<installed>[^|]+) \|$")


def readme_rows() -> dict[str, dict]:
    text = README.read_text()
    section = text[text.index("### Default schedules"):text.index("### Operations jobs")]
    return {m["name"]: m.groupdict() for line in section.splitlines()
            if (m := ROW.match(line))}


def test_every_declared_schedule_is_an_installed_row_of_the_readme():
    rows = readme_rows()
    specs = default_schedule_specs()
    for spec in specs:
        row = rows.get(spec.name)
        assert row is not None, f"{spec.name} is not in the README's schedule table"
        assert (row["cron"], row["zone"]) == (spec.cron, spec.time_zone), spec.name
        assert row["installed"].startswith("**yes**"), spec.name
    declared = {spec.name for spec in specs}
    claimed = {name for name, row in rows.items() if row["installed"].startswith("**yes**")}
    assert claimed <= declared, f"installed in the README only: {claimed - declared}"
