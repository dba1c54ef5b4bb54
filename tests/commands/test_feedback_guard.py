"""manage.py feedback_guard: list, block, unblock, evaluate; bad input changes nothing."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from feedback_app import blocks
from feedback_app.models import GuardBlock

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("feedback_guard", *args, stdout=out)
    return out.getvalue()


def test_block_list_and_unblock():
    assert "Blocked: #" in run("--block-prefix", "+23480", "--reason", "pumping", "--hours", "2")
    block = GuardBlock.objects.get()
    assert (block.kind, block.value, block.created_by) == (
        "prefix",
        "+23480",
        "manage.py feedback_guard",
    )
    assert block.until is not None
    assert "Already blocked" in run("--block-prefix", "+23480", "--reason", "again")
    assert "+23480" in run() and "1 blocks in force." in run()
    assert f"Lifted block {block.pk}." in run("--unblock", str(block.pk))
    assert "no longer in force" in run("--unblock", str(block.pk))
    assert "0 blocks in force." in run()
    assert "lifted" in run("--all")


def test_block_a_country_until_lifted():
    run("--block-country", "ng", "--reason", "no customers there")
    block = GuardBlock.objects.get()
    assert (block.kind, block.value, block.until) == ("country", "NG", None)


def test_evaluate_prints_the_new_blocks():
    assert "0 new blocks." in run("--evaluate")


@pytest.mark.parametrize(
    "args",
    [
        ["--block-prefix", "23480", "--reason", "x"],
        ["--block-country", "XX", "--reason", "x"],
        ["--block-prefix", "+23480"],
        ["--block-prefix", "+23480", "--reason", "  "],
        ["--block-prefix", "+23480", "--block-country", "NG", "--reason", "x"],
        ["--block-prefix", "+23480", "--reason", "x", "--hours", "0"],
        ["--reason", "x"],
        ["--unblock", "999"],
        ["--unblock", "x"],
        ["--unblock", "1", "--evaluate"],
    ],
)
def test_bad_input_is_a_command_error_and_changes_nothing(args):
    with pytest.raises(CommandError):
        run(*args)
    assert not GuardBlock.objects.exists()


def test_listing_says_why_with_the_numbers():
    blocks.block("prefix", "+23480", reason="+23480: 0 of 412 sends converted", automatic=True)
    assert "automatic: +23480: 0 of 412 sends converted" in run()
