"""Nothing in the core names a provider: a provider is added (or removed) in its own files.

The core is every Python module of ``feedback_app`` but:

- ``providers/``, ``webhooks/`` and ``testing/``: the provider backends, their webhooks and fakes;
- ``migrations/``: generated history, never edited by hand;
- ``demo.py``, ``demo_verifications.py``: the demo seeds realistic history per provider;
- ``conf.py``'s ``BUILTIN_BACKENDS``: the registry mapping the built-in keys to their backends
  (the one place a built-in provider is named, so a key works without a ``BACKEND`` setting).

What counts as naming a provider is code, not prose: an identifier (a variable, class, function,
attribute or imported module) containing a provider's or SDK's name, or a string literal that is
such a name or a dotted path into a provider's module. Comments, docstrings and help texts that
give a provider as an example are prose and stay allowed.

``ALLOWED`` lists the exceptions left on purpose, each with its reason.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import feedback_app

PACKAGE = Path(feedback_app.__file__).parent

EXCLUDED_DIRS = {"providers", "webhooks", "testing", "migrations"}
EXCLUDED_FILES = {"demo.py", "demo_verifications.py"}

#: Provider keys, vendors and their SDKs' import names.
NAMES = re.compile(
    r"twilio|aws|amazon|sns|chime|boto|locmem|vonage|nexmo|plivo|sinch|infobip|telesign|alibaba"
    r"|aliyun|dysms",
    re.IGNORECASE,
)
#: A string literal that is a name or dotted path (not a sentence).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

#: (module, name) -> why it stays.
ALLOWED: dict[tuple[str, str], str] = {
    # Django finds an app's models in its models module, and migration 0005 created the table as
    # feedback_app.SnsSubscription: the SNS webhook's record of subscription requests lives
    # there, with its admin on the app's admin site.
    ("models.py", "SnsSubscription"): "the SNS webhook's table",
    ("models.py", "sns_message_id"): "a column of that table",
    ("models.py", "feedback_app_sns_sub_message"): "a constraint of that table",
    ("admin/__init__.py", "SnsSubscriptionAdmin"): "its admin, registered with the app's",
    ("admin/subscriptions.py", "SnsSubscription"): "its admin",
    ("admin/subscriptions.py", "SnsSubscriptionAdmin"): "its admin",
    ("admin/subscriptions.py", "feedback_app.change_snssubscription"): "its admin's permission",
    # A documented global setting (docs/settings.md) read by the SNS webhook: renaming it would
    # break hosts' settings.
    ("conf.py", "SNS_MAX_AGE"): "documented setting",
    ("checks.py", "SNS_MAX_AGE"): "the known settings keys",
}


def core_modules() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] not in EXCLUDED_DIRS
        and path.name not in EXCLUDED_FILES
    )


def builtin_backends_lines(source: str) -> range:
    """The lines of ``BUILTIN_BACKENDS = {...}`` in conf.py."""
    for node in ast.parse(source).body:
        targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
        if any(getattr(target, "id", "") == "BUILTIN_BACKENDS" for target in targets):
            return range(node.lineno, (node.end_lineno or node.lineno) + 1)
    raise AssertionError("conf.py has no BUILTIN_BACKENDS")


def provider_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each identifier or identifier-like string naming a provider."""
    source = path.read_text()
    skipped = builtin_backends_lines(source) if path.name == "conf.py" else range(0)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.start[0] in skipped:
            continue
        if token.type == tokenize.NAME:
            name = token.string
        elif token.type == tokenize.STRING:
            try:
                name = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):  # an f-string part
                continue
            if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
                continue
        else:
            continue
        if NAMES.search(name):
            found.append((token.start[0], name))
    return found


def test_the_scan_covers_the_core_and_finds_what_it_looks_for(tmp_path):
    modules = {path.relative_to(PACKAGE).as_posix() for path in core_modules()}
    assert {"services.py", "outbox.py", "checks.py", "admin/dashboard.py"} <= modules
    assert not any(module.startswith(("providers/", "webhooks/")) for module in modules)

    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Docstring naming Twilio."""\n'
        "# a comment naming chime\n"
        "import boto3\n"
        'if key == "aws_sms":\n'
        '    backend = "feedback_app.providers.twilio.TwilioProvider"\n'
        'help = "e.g. twilio or chime"\n'
    )
    assert provider_names(sample) == [
        (3, "boto3"),
        (4, "aws_sms"),
        (5, "feedback_app.providers.twilio.TwilioProvider"),
    ]


def test_no_core_module_names_a_provider():
    violations = []
    for path in core_modules():
        module = path.relative_to(PACKAGE).as_posix()
        for line, name in provider_names(path):
            if (module, name) not in ALLOWED:
                violations.append(f"{module}:{line}: {name}")

    # Move each provider-specific piece behind the provider interface (providers/base.py).
    assert violations == []


def test_every_allowed_exception_is_still_needed():
    used = {
        (path.relative_to(PACKAGE).as_posix(), name)
        for path in core_modules()
        for _, name in provider_names(path)
    }
    assert set(ALLOWED) <= used
