"""Bad arguments exit with status 1 and a clear message, from the real command line.

``call_command`` turns every argument error into a ``CommandError`` and never exits, so these
run ``python manage.py`` in a subprocess. Its database is a SQLite file that must never be
created: a refused argument changes nothing, not even by opening the database.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError

from feedback_app.management.base import FeedbackCommand

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(name for name, app in get_commands().items() if app == "feedback_app")


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    database = tmp_path / "never-created.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    env.pop("REDIS_URL", None)
    result = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not database.exists(), "a refused argument opened the database"
    return result


def test_every_app_command_uses_the_base_that_exits_with_1():
    from importlib import import_module

    for name in COMMANDS:
        command = import_module(f"feedback_app.management.commands.{name}").Command
        assert issubclass(command, FeedbackCommand), name


@pytest.mark.parametrize("name", COMMANDS)
def test_an_unknown_option_exits_with_1_and_says_which(tmp_path, name):
    result = manage(tmp_path, name, "--no-such-option")
    assert result.returncode == 1, result.stderr
    assert "CommandError: unrecognized arguments: --no-such-option" in result.stderr
    assert f"manage.py {name} --help" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["feedback_demo", "--days", "abc"], "--days must be a whole number from 1 to 3,650"),
        (["feedback_demo", "--messages", "1.5"], "--messages must be a whole number"),
        (["feedback_demo", "--seed", "x"], "--seed must be a whole number, not 'x'"),
        (["feedback_fakes", "--port", "http"], "--port must be a whole number from 1 to 65,535"),
        (["feedback_report", "--until"], "argument --until: expected one argument"),
        (["feedback_purge", "--batch-size", "0"], "--batch-size must be a whole number"),
        (["feedback_expire", "--verbosity", "loud"], "argument -v/--verbosity: invalid"),
        (["feedback_purge", "--days", "800000"], "--days must be a whole number from 1 to 36,500"),
        (["feedback_sync", "--limit", "9" * 23], "--limit must be a whole number from 1 to"),
        (["feedback_retry", "--since", "99999999999w"], "--since must be at most 36,500 days"),
        (["feedback_worker"], "Give either --periodic or --once"),
        (["feedback_worker", "--once", "--job", "nope"], "Unknown job 'nope'"),
    ],
)
def test_a_bad_value_exits_with_1_and_a_clear_message(tmp_path, args, message):
    result = manage(tmp_path, *args)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and not result.stdout


def test_help_still_exits_with_0(tmp_path):
    result = manage(tmp_path, "feedback_expire", "--help")
    assert result.returncode == 0
    assert "--dry-run" in result.stdout and not result.stderr


def test_called_from_python_an_unknown_option_is_a_command_error():
    with pytest.raises(CommandError, match="unrecognized arguments: --no-such-option"):
        call_command("feedback_expire", "--no-such-option")
