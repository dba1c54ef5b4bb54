"""The documentation keeps up with the code: every setting and every command is documented, and
every command explains itself with ``--help``."""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands

from feedback_app.conf import DEFAULTS

DOCS = Path(__file__).resolve().parent.parent / "docs"

COMMANDS = sorted(
    name
    for name, app in get_commands().items()
    if app == "feedback_app" and name != "feedback_fakes"
)

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
def test_every_setting_is_in_the_settings_reference(key):
    assert f"`{key}`" in (DOCS / "settings.md").read_text()


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_and_is_documented(name, capsys):
    with pytest.raises(SystemExit) as exited:
        call_command(name, "--help", stdout=StringIO())
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: manage.py {name}" in text or f"{name} [-h]" in text
    # The command's own description, not only the generic Django options.
    assert len(re.sub(r"\s+", " ", text.split("options:")[0])) > 150
    assert f"## `{name}`" in (DOCS / "commands.md").read_text()


def test_the_index_links_every_page_and_the_readme_links_the_index():
    index = (DOCS / "index.md").read_text()
    for page in PAGES:
        assert f"]({page}" in index, page
    assert "docs/index.md" in (DOCS.parent / "README.md").read_text()


def test_relative_links_in_the_docs_point_at_files():
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name}: {target}"
