"""The documentation keeps up with the code: every setting (nested keys too) is documented with
its default, and every command and each of its options is explained by ``--help`` and in
docs/commands.md."""

import ast
import re
from importlib import import_module
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.test import override_settings

from feedback_app.conf import DEFAULTS, app_settings

DOCS = Path(__file__).resolve().parent.parent / "docs"

COMMANDS = sorted(name for name, app in get_commands().items() if app == "feedback_app")

#: Dict settings whose keys are the project's own (provider keys, window patterns): documented
#: as a whole. Every other dict setting has fixed keys, each documented on its own row.
MAPPINGS = {"PROVIDERS", "FEEDBACK_WINDOWS"}
NESTED = sorted(
    (key, sub)
    for key, value in DEFAULTS.items()
    if isinstance(value, dict) and key not in MAPPINGS
    for sub in value
)
#: A row of a settings table: | `KEY` or `KEY["SUB"]` | default | meaning |
ROW = re.compile(r"^\|\s*`([A-Z_]+)(?:\[\"(\w+)\"\])?`\s*\|([^|]*)\|")
#: Options every Django command has; the rest are the command's own.
DJANGO_OPTIONS = {
    dest
    for dest in (action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions)
}


def settings_rows() -> dict[tuple[str, str | None], str]:
    """(key, nested key or None) -> the default column of docs/settings.md's tables."""
    rows = {}
    for line in (DOCS / "settings.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            key, sub, default = match.groups()
            assert (key, sub) not in rows, f"documented twice: {line}"
            rows[(key, sub)] = default.strip()
    return rows


def documented_default(cell: str) -> object:
    """The value of the first code span of a default cell (`None` (required) -> None)."""
    match = re.search(r"`([^`]+)`", cell)
    assert match, f"no default in {cell!r}"
    return ast.literal_eval(match[1])


def own_options(name: str) -> list:
    command = import_module(f"feedback_app.management.commands.{name}").Command()
    parser = command.create_parser("manage.py", name)
    return [action for action in parser._actions if action.dest not in DJANGO_OPTIONS]


def command_section(name: str) -> str:
    text = (DOCS / "commands.md").read_text()
    match = re.search(rf"^## `{name}`\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"docs/commands.md has no section ## `{name}`"
    return match[1]


#: The pages a new user needs, each linked from the index.
PAGES = (
    "quickstart.md",
    "conversion-feedback.md",
    "webhooks.md",
    "settings.md",
    "commands.md",
    "api.md",
    "otp.md",
    "data-protection.md",
    "deployment.md",
)


def test_the_issue_commands_exist():
    assert {
        "feedback_report",
        "feedback_expire",
        "feedback_retry",
        "feedback_sync",
        "feedback_purge",
        "feedback_demo",
        "feedback_schedules",
    } <= set(COMMANDS)


@pytest.mark.parametrize("key", sorted(DEFAULTS))
def test_every_setting_is_in_the_settings_reference_with_its_default(key):
    rows = settings_rows()
    assert (key, None) in rows, f"docs/settings.md has no row for `{key}`"
    assert documented_default(rows[(key, None)]) == DEFAULTS[key]


@pytest.mark.parametrize(("key", "sub"), NESTED)
def test_every_nested_setting_has_its_own_row_with_its_default(key, sub):
    rows = settings_rows()
    assert (key, sub) in rows, f'docs/settings.md has no row for `{key}["{sub}"]`'
    assert documented_default(rows[(key, sub)]) == DEFAULTS[key][sub]


def test_the_settings_reference_documents_no_setting_that_does_not_exist():
    for key, sub in settings_rows():
        assert key in DEFAULTS, key
        if sub is not None:
            assert sub in DEFAULTS[key], f"{key}[{sub!r}]"


def test_the_settings_reference_names_the_dicts_merged_key_by_key():
    intro = re.sub(r"\s+", " ", (DOCS / "settings.md").read_text())
    sentence = re.search(r"The dict-valued keys ([^.]*) are merged key by key", intro)
    assert sentence, "docs/settings.md no longer says which dicts are merged key by key"
    assert set(re.findall(r"`([A-Z_]+)`", sentence[1])) == {key for key, _ in NESTED}
    # What the sentence promises for the ones conf.py merges: one key overrides one default.
    for key, sub in NESTED:
        if key == "ALERTS":  # merged where it is read (feedback_app.alerts)
            continue
        with override_settings(FEEDBACK_APP={"HASH_KEY": "x", key: {sub: "changed"}}):
            assert getattr(app_settings, key) == {**DEFAULTS[key], sub: "changed"}


def test_alerts_are_merged_key_by_key_where_they_are_read(monkeypatch):
    from types import SimpleNamespace

    from feedback_app import alerts

    # No data needed: the thresholds are read before any report, and a partial dict must do.
    empty = SimpleNamespace(rows=[])
    monkeypatch.setattr(
        alerts,
        "conversion_reports",
        lambda filters, dimensions: SimpleNamespace(reports=dict.fromkeys(dimensions, empty)),
    )
    with override_settings(FEEDBACK_APP={"HASH_KEY": "x", "ALERTS": {"DROP": 0.5}}):
        assert alerts.conversion_alerts() == []


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_is_documented(name, capsys):
    with pytest.raises(SystemExit) as exited:
        call_command(name, "--help", stdout=StringIO())
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: manage.py {name}" in text or f"{name} [-h]" in text
    # The command's own description, not only the generic Django options.
    assert len(re.sub(r"\s+", " ", text.split("options:")[0])) > 150
    section = command_section(name)
    for action in own_options(name):
        option = max(action.option_strings, key=len)
        assert option in text, f"{name} --help does not show {option}"
        assert action.help and len(action.help) > 10, f"{name} {option} has no help text"
        assert f"`{option}" in section, f"docs/commands.md: {name} does not document {option}"


def test_the_options_test_sees_each_commands_own_options():
    assert [max(a.option_strings, key=len) for a in own_options("feedback_expire")] == [
        "--dry-run",
        "--no-progress",
    ]


def test_the_index_links_every_page_and_the_readme_links_the_index():
    index = (DOCS / "index.md").read_text()
    for page in PAGES:
        assert f"]({page}" in index, page
    assert "docs/index.md" in (DOCS.parent / "README.md").read_text()


def test_relative_links_in_the_docs_point_at_files():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


def test_the_pages_that_list_the_schedules_name_each_one():
    from feedback_app.schedules import SCHEDULES

    for page in ("quickstart.md", "commands.md", "deployment.md", "settings.md"):
        text = (DOCS / page).read_text()
        for name in SCHEDULES:
            assert f"`{name.removeprefix('feedback_app.')}`" in text or (
                f'["{name.removeprefix("feedback_app.")}"]' in text
            ), f"{page}: {name}"


def test_the_install_extras_in_the_quickstart_exist():
    import tomllib

    extras = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    named = re.search(r"Extras: (.*?)\.\s", (DOCS / "quickstart.md").read_text(), re.S)[1]
    listed = set(re.findall(r"`(\w+)`\s+\(", named))
    assert listed and listed <= set(extras)
    assert set(extras) - listed == {"dev"}


def test_the_readme_names_every_system_check_id():
    """docs/quickstart.md sends readers to the README's list of check ids."""
    package = DOCS.parent / "feedback_app"
    sources = [package / "checks.py", *(package / "providers").glob("*.py")]
    in_code = {
        check_id for path in sources for check_id in re.findall(r"\b[EW]\d{3}\b", path.read_text())
    }
    readme = (DOCS.parent / "README.md").read_text()
    named = set(re.findall(r"`([EW]\d{3})`", readme))
    for first, last in re.findall(r"([EW]\d{3})`?–`?(?:feedback_app\.)?([EW]\d{3})", readme):
        named |= {f"{first[0]}{n:03d}" for n in range(int(first[1:]), int(last[1:]) + 1)}
    assert in_code and in_code <= named, sorted(in_code - named)
