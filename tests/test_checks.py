"""System checks: each bad FEEDBACK_APP (or Q_CLUSTER) setting is reported by its id, and the
test settings are clean."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from io import StringIO

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core.checks import Error, Warning, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from feedback_app.checks import check_settings

GOOD_KEY = "a-long-enough-hash-key-0123456789"


# Model checks ask the database what it supports (JSONField on SQLite).
pytestmark = pytest.mark.django_db


def app_issues() -> list:
    return [issue for issue in run_checks() if issue.id.startswith("feedback_app.")]


def app_ids() -> list[str]:
    return sorted(issue.id for issue in app_issues())


@pytest.fixture
def feedback_app(settings):
    """Set FEEDBACK_APP to the test settings plus the overrides given."""

    def apply(**overrides):
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, **overrides}

    return apply


def test_the_test_settings_have_no_feedback_app_issues():
    assert app_issues() == []
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err)
    assert "feedback_app." not in out.getvalue() + err.getvalue()


@pytest.mark.parametrize("key", [None, ""])
def test_missing_hash_key_is_e001(feedback_app, key):
    feedback_app(HASH_KEY=key)
    assert app_ids() == ["feedback_app.E001"]
    assert all(isinstance(issue, Error) for issue in app_issues())


def test_hash_key_left_out_entirely_is_e001(settings):
    settings.FEEDBACK_APP = {k: v for k, v in settings.FEEDBACK_APP.items() if k != "HASH_KEY"}
    assert app_ids() == ["feedback_app.E001"]


def test_check_command_fails_on_a_missing_hash_key(feedback_app):
    feedback_app(HASH_KEY=None)
    with pytest.raises(SystemCheckError, match=r"feedback_app\.E001"):
        call_command("check", stdout=StringIO(), stderr=StringIO())


@pytest.mark.parametrize("key", ["short", "x" * 15, 1234567890123456789, ["x" * 20]])
def test_short_or_non_string_hash_key_is_e002(feedback_app, key):
    feedback_app(HASH_KEY=key)
    assert app_ids() == ["feedback_app.E002"]


@pytest.mark.parametrize("key", ["x" * 16, b"y" * 32])
def test_a_hash_key_of_16_characters_or_more_is_accepted(feedback_app, key):
    feedback_app(HASH_KEY=key)
    assert app_ids() == []


@pytest.mark.parametrize("value", ["not a dict", ["HASH_KEY"], 5])
def test_feedback_app_that_is_not_a_dict_is_e003_not_a_crash(settings, value):
    settings.FEEDBACK_APP = value
    assert "feedback_app.E003" in app_ids()


def test_unknown_key_is_e004_and_names_it(feedback_app):
    feedback_app(HASH_KEYS="typo")
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E004"
    assert "HASH_KEYS" in issue.msg


@pytest.mark.parametrize("providers", [{}, None, ["locmem"]])
def test_no_providers_is_e005(feedback_app, providers):
    feedback_app(PROVIDERS=providers)
    assert app_ids() == ["feedback_app.E005"]


def test_provider_settings_that_are_not_a_dict_are_e006(feedback_app):
    feedback_app(PROVIDERS={"locmem": "yes"})
    assert app_ids() == ["feedback_app.E006"]


def test_unknown_provider_key_without_backend_is_e007(feedback_app):
    feedback_app(PROVIDERS={"locmem": {}, "carrier_pigeon": {"API_KEY": "k"}})
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E007"
    assert "carrier_pigeon" in issue.msg


def test_builtin_provider_key_needs_no_backend(feedback_app):
    feedback_app(PROVIDERS={"locmem": {}})
    assert app_ids() == []


@pytest.mark.parametrize(
    "backend",
    [
        "no_such_package.providers.Backend",
        "feedback_app.providers.locmem.NoSuchProvider",
        "notadottedpath",
    ],
)
def test_unimportable_backend_is_e008(feedback_app, backend):
    feedback_app(PROVIDERS={"locmem": {}, "custom": {"BACKEND": backend}})
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E008"
    assert "custom" in issue.msg


@pytest.mark.parametrize(
    "windows",
    [
        {"*": 0},
        {"*": -60},
        {"*": "600"},
        {"*": 600, "locmem:otp": 1.5},
        {"*": True},
        {"*": None},
        [("*", 600)],
        600,
    ],
)
def test_bad_feedback_windows_are_e009(feedback_app, windows):
    feedback_app(FEEDBACK_WINDOWS=windows)
    assert app_ids() == ["feedback_app.E009"]


@pytest.mark.parametrize(
    "retry",
    [
        {"BASE_DELAY": 0},
        {"MAX_DELAY": -1},
        {"MAX_AGE": "1d"},
        {"MAX_ATTEMPTS": None},
        {"MAX_ATTEMPTS": True},
        {"BACKOFF": 2},
        None,
        5,
    ],
)
def test_bad_retry_settings_are_e010_not_a_crash(feedback_app, retry):
    feedback_app(RETRY=retry)
    assert app_ids() == ["feedback_app.E010"]


@pytest.mark.parametrize("attempts", [2.5, 3.0])
def test_max_attempts_that_is_not_a_whole_number_is_e010(feedback_app, attempts):
    feedback_app(RETRY={"MAX_ATTEMPTS": attempts})
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E010"
    assert "MAX_ATTEMPTS" in issue.msg


def test_partial_retry_settings_merge_over_the_defaults(feedback_app):
    feedback_app(RETRY={"MAX_ATTEMPTS": 3, "BASE_DELAY": 0.5})
    assert app_ids() == []


@pytest.mark.parametrize(
    "name",
    [
        "CLAIM_TIMEOUT",
        "SWEEP_BATCH",
        "SWEEP_GRACE",
        "EXPIRE_BATCH",
        "POLL_BATCH",
        "POLL_MAX_AGE",
        "SYNC_STALE_AFTER",
        "SYNC_MAX_AGE",
        "IDEMPOTENCY_TTL",
        "IDEMPOTENCY_CLAIM_TIMEOUT",
    ],
)
@pytest.mark.parametrize("value", [0, -5, "10", 2.5, None, True])
def test_bad_integer_settings_are_e011(settings, feedback_app, name, value):
    feedback_app(**{name: value})
    # Keep Q_CLUSTER out of it: a bad CLAIM_TIMEOUT must be reported on its own.
    settings.Q_CLUSTER = {"sync": True}
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.E011"]
    assert name in issues[0].msg


@pytest.mark.parametrize(
    "windows",
    [
        {"*": 600, "locmem:not a slug": 60},
        {"*": 600, "*:": 60},
        {"*": 600, ":otp": 60},
        {"*": 600, "locmem:otp:login": 60},
        {"*": 600, 5: 60},
    ],
)
def test_malformed_feedback_window_keys_are_e012(feedback_app, windows):
    feedback_app(FEEDBACK_WINDOWS=windows)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E012"
    assert isinstance(issue, Error)
    assert issue.hint
    bad = [key for key in windows if key != "*"]
    assert repr(bad[0]) in issue.msg


@pytest.mark.parametrize("key", ["twillio", "twillio:otp", "aws-sms", "AWS_SMS:login"])
def test_feedback_window_keys_naming_an_unknown_provider_are_w004(feedback_app, key):
    feedback_app(FEEDBACK_WINDOWS={"*": 600, key: 60})
    (issue,) = app_issues()
    assert issue.id == "feedback_app.W004"
    assert isinstance(issue, Warning)
    assert repr(key) in issue.msg


def test_a_window_for_a_builtin_provider_not_configured_here_is_accepted(feedback_app):
    # The README's example does this; recorded history (the demo's) uses such windows.
    feedback_app(FEEDBACK_WINDOWS={"*": 600, "aws_sms": 3600, "twilio:otp": 300})
    assert app_ids() == []


def test_feedback_window_keys_of_every_form_are_accepted(feedback_app):
    feedback_app(
        PROVIDERS={"locmem": {}, "silent": {"BACKEND": "tests.backends.SilentProvider"}},
        FEEDBACK_WINDOWS={"*": 600, "locmem": 300, "silent:login": 60, "*:2fa": 120},
    )
    assert app_ids() == []


@pytest.mark.parametrize(
    "schedules",
    [
        {"sweep_outbox": "often"},
        {"sweep_outbox": 0},
        {"expire_overdue": -1},
        {"poll_statuses": 2.5},
        {"refresh_rollups": True},
        {"sweep_outbox": None},
        {"swep_outbox": 1},
        "often",
        [("sweep_outbox", 1)],
    ],
)
def test_bad_schedules_are_e013(feedback_app, schedules):
    feedback_app(SCHEDULES=schedules)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E013"
    assert "sweep_outbox" in issue.hint


@pytest.mark.parametrize("region", ["XX", "us", "USA", 1, ""])
def test_default_region_phonenumbers_does_not_know_is_e014(feedback_app, region):
    feedback_app(DEFAULT_REGION=region)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E014"
    assert issue.hint


@pytest.mark.parametrize("region", ["US", "GB", None])
def test_a_known_default_region_or_none_is_accepted(feedback_app, region):
    feedback_app(DEFAULT_REGION=region)
    assert app_ids() == []


@pytest.mark.parametrize("days", ["ninety", 0, -1, 2.5, True, "90"])
def test_bad_retention_days_are_e015(feedback_app, days):
    feedback_app(RETENTION_DAYS=days)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E015"
    assert issue.hint


@pytest.mark.parametrize("days", [1, 365, None])
def test_retention_days_or_none_are_accepted(feedback_app, days):
    feedback_app(RETENTION_DAYS=days)
    assert app_ids() == []


@pytest.mark.parametrize(
    ("two_factor", "problem"),
    [
        ({"PROVIDER": "twilio"}, "PROVIDER 'twilio' is not configured"),
        ({"PROVIDER": ["locmem"]}, "PROVIDER"),
        ({"PROVIDER": "locmem", "PURPOSE": "two factor"}, "PURPOSE"),
        ({"PROVIDER": "locmem", "SENDER": 5}, "SENDER"),
        ({"PROVIDER": "locmem", "BODY": "Your code"}, "BODY"),
        ({"PROVIDER": "locmem", "BODY": "{user}: {token}"}, "BODY"),
        ({"PROVIDR": "locmem"}, "unknown key 'PROVIDR'"),
        ("locmem", "must be a dict"),
    ],
)
def test_bad_two_factor_settings_are_e016(feedback_app, two_factor, problem):
    feedback_app(TWO_FACTOR=two_factor)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E016"
    assert problem in issue.msg
    assert issue.hint


@pytest.mark.parametrize(
    "two_factor",
    [{}, {"PROVIDER": "locmem"}, {"PROVIDER": "locmem", "SENDER": "Acme", "BODY": "{token}"}],
)
def test_sound_two_factor_settings_are_accepted(feedback_app, two_factor):
    feedback_app(TWO_FACTOR=two_factor)
    assert app_ids() == []


@pytest.mark.parametrize(
    "alerts",
    [
        {"MIN_VOLUME": 0},
        {"MIN_VOLUME": "50"},
        {"MIN_VOLUME": 2.5},
        {"DROP": 0},
        {"DROP": 1},
        {"DROP": 1.5},
        {"DROP": "0.3"},
        {"DROP": True},
        {"MINVOLUME": 10},
        ["MIN_VOLUME", 50],
        50,
    ],
)
def test_bad_alert_settings_are_e017(feedback_app, alerts):
    feedback_app(ALERTS=alerts)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E017"
    assert issue.hint


@pytest.mark.parametrize("alias", ["nowhere", "", None, ["reports"]])
def test_a_reports_database_not_in_databases_is_e040(feedback_app, alias):
    feedback_app(REPORTS_DATABASE=alias)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E040"
    assert "'default'" in issue.hint


def test_a_reports_database_in_databases_is_fine(feedback_app):
    feedback_app(REPORTS_DATABASE="reports")  # the test settings' mirror of default
    assert app_issues() == []


@pytest.mark.parametrize(
    "alerts", [{"MIN_VOLUME": 10}, {"DROP": 0.5}, {"MIN_VOLUME": 5, "DROP": 0.2}, None]
)
def test_sound_alert_settings_are_accepted(feedback_app, alerts):
    feedback_app(ALERTS=alerts)
    assert app_ids() == []


@pytest.mark.parametrize(
    "options",
    [{}, {"timeout": 20}, {"transaction_mode": "DEFERRED"}, None],
    ids=["no-options", "no-mode", "deferred", "none"],
)
def test_sqlite_without_immediate_transactions_is_w003(monkeypatch, options):
    database = {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}
    if options is not None:
        database["OPTIONS"] = options
    # The check reads the setting only; the test's own connection is left alone.
    monkeypatch.setattr(django_settings, "DATABASES", {"default": database})
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W003"]
    assert isinstance(issues[0], Warning)
    assert "IMMEDIATE" in issues[0].hint and "README" in issues[0].hint


@pytest.mark.parametrize(
    "database",
    [
        {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"transaction_mode": "IMMEDIATE"}},
        {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"transaction_mode": "immediate"}},
        {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"transaction_mode": "EXCLUSIVE"}},
        {"ENGINE": "django.db.backends.postgresql"},
    ],
)
def test_immediate_sqlite_or_another_database_has_no_w003(monkeypatch, database):
    monkeypatch.setattr(django_settings, "DATABASES", {"default": {"NAME": "db", **database}})
    assert app_ids() == []


@pytest.mark.django_q
@pytest.mark.parametrize(("timeout", "retry"), [(60, 60), (60, 30)])
def test_q_cluster_retry_not_above_timeout_is_w001(settings, timeout, retry):
    settings.Q_CLUSTER = {"name": "t", "timeout": timeout, "retry": retry}
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W001"]
    assert isinstance(issues[0], Warning)


@pytest.mark.django_q
def test_q_cluster_default_retry_not_above_timeout_is_w001(settings):
    # django-q2's default retry is 60 seconds.
    settings.Q_CLUSTER = {"name": "t", "timeout": 60}
    assert app_ids() == ["feedback_app.W001"]


@pytest.mark.django_q
@pytest.mark.parametrize("timeout", [90, 120])
def test_q_cluster_timeout_not_below_claim_timeout_is_w002(settings, feedback_app, timeout):
    feedback_app(CLAIM_TIMEOUT=90)
    settings.Q_CLUSTER = {"name": "t", "timeout": timeout, "retry": 300}
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W002"]
    assert isinstance(issues[0], Warning)


@pytest.mark.django_q
def test_q_cluster_warnings_come_together_and_do_not_fail_the_check_command(settings):
    settings.Q_CLUSTER = {"name": "t", "timeout": 100, "retry": 100}
    assert app_ids() == ["feedback_app.W001", "feedback_app.W002"]
    err = StringIO()
    call_command("check", stdout=StringIO(), stderr=err)
    assert "feedback_app.W001" in err.getvalue()
    assert "feedback_app.W002" in err.getvalue()


@pytest.mark.django_q
@pytest.mark.parametrize(
    "q_cluster",
    [
        {"name": "t", "timeout": 60, "retry": 120},
        {"name": "t"},
        {"name": "t", "timeout": 100, "retry": 100, "sync": True},
        {},
    ],
    ids=["timeout<claim<retry", "no-timeout", "sync", "empty"],
)
def test_sound_or_sync_q_cluster_has_no_warnings(settings, q_cluster):
    settings.Q_CLUSTER = q_cluster
    assert app_ids() == []


def test_several_problems_are_all_reported(settings):
    settings.FEEDBACK_APP = {
        "QUEUE": settings.FEEDBACK_APP["QUEUE"],  # the run's, installed
        "HASH_KEY": "short",
        "PROVIDERS": {},
        "FEEDBACK_WINDOWS": {"*": 0},
        "RETRY": {"BASE_DELAY": -1},
        "EXPIRE_BATCH": 0,
        "COLOR": "blue",
    }
    assert app_ids() == [
        "feedback_app.E002",
        "feedback_app.E004",
        "feedback_app.E005",
        "feedback_app.E009",
        "feedback_app.E010",
        "feedback_app.E011",
    ]
    with pytest.raises(SystemCheckError) as excinfo:
        call_command("check", stdout=StringIO(), stderr=StringIO())
    for code in ("E002", "E004", "E005", "E009", "E010", "E011"):
        assert f"feedback_app.{code}" in str(excinfo.value)


# Provider backends check their own settings ------------------------------------------------


def test_twilio_without_auth_token_or_callback_url_warns_w101_and_w102(feedback_app, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    feedback_app(PROVIDERS={"twilio": {"ACCOUNT_SID": "AC" + "0" * 32}}, PUBLIC_URL=None)
    assert app_ids() == ["feedback_app.W101", "feedback_app.W102"]


def test_twilio_with_token_and_public_url_is_clean(feedback_app):
    feedback_app(
        PROVIDERS={"twilio": {"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": "secret"}},
        PUBLIC_URL="https://app.example.com",
    )
    assert app_ids() == []


def test_aws_sms_without_sns_protection_warns_w103(feedback_app):
    feedback_app(
        PROVIDERS={"aws_sms": {"CONFIGURATION_SET": "otp", "WEBHOOK_BASIC_AUTH": "sns:secret"}}
    )
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W103"]
    assert "SNS_TOPIC_ARNS" in issues[0].msg
    feedback_app(
        PROVIDERS={
            "aws_sms": {
                "CONFIGURATION_SET": "otp",
                "WEBHOOK_BASIC_AUTH": "sns:secret",
                "SNS_TOPIC_ARNS": ["arn:aws:sns:us-east-1:111122223333:sms"],
            }
        }
    )
    assert app_ids() == []


@pytest.mark.parametrize("configuration_set", [None, ""])
def test_aws_sms_without_a_configuration_set_warns_w106(feedback_app, configuration_set):
    webhook = {
        "WEBHOOK_BASIC_AUTH": "sns:secret",
        "SNS_TOPIC_ARNS": ["arn:aws:sns:us-east-1:111122223333:sms"],
    }
    feedback_app(PROVIDERS={"aws_sms": {**webhook, "CONFIGURATION_SET": configuration_set}})
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W106"]
    assert isinstance(issues[0], Warning)
    assert "no delivery events" in issues[0].msg
    # A warning, not an error: the check command passes and says so.
    out = StringIO()
    call_command("check", stdout=out, stderr=out)
    assert "feedback_app.W106" in out.getvalue()
    feedback_app(PROVIDERS={"aws_sms": {**webhook, "CONFIGURATION_SET": "otp-events"}})
    assert app_ids() == []


def test_sns_max_age_must_be_a_positive_integer_e011(feedback_app):
    for bad in (0, -1, "3600", 3600.0, True):
        feedback_app(SNS_MAX_AGE=bad)
        assert app_ids() == ["feedback_app.E011"]
    feedback_app(SNS_MAX_AGE=600)
    assert app_ids() == []


def test_chime_without_bearer_warns_w104(feedback_app):
    feedback_app(PROVIDERS={"chime": {}})
    assert app_ids() == ["feedback_app.W104"]
    feedback_app(
        PROVIDERS={"chime": {"CHIME_BEARER": "arn:aws:chime:us-east-1:1:app-instance/a/bot/b"}}
    )
    assert app_ids() == []


# The task queue (E018, W018) ---------------------------------------------------------------------

TASKS_API = "django.tasks" if find_spec("django.tasks") else "django_tasks"


def test_an_unknown_queue_is_e018(feedback_app):
    feedback_app(QUEUE="celery")
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.E018"]
    assert "'celery'" in issues[0].msg


def test_django_q_not_installed_is_e018(feedback_app, monkeypatch):
    feedback_app(QUEUE="django_q")
    installed = apps.is_installed
    monkeypatch.setattr(apps, "is_installed", lambda name: name != "django_q" and installed(name))
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.E018"]
    assert "INSTALLED_APPS" in issues[0].msg


@pytest.mark.django_q
@pytest.mark.parametrize("cluster", [5, "", ["feedback"]])
def test_a_django_q_cluster_that_is_not_a_name_is_e018(feedback_app, cluster):
    feedback_app(QUEUE="django_q", DJANGO_Q_CLUSTER=cluster)
    assert app_ids() == ["feedback_app.E018"]


def test_django_tasks_with_an_unknown_backend_alias_is_e018(feedback_app):
    feedback_app(QUEUE="django_tasks", TASKS_BACKEND="missing")
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.E018"]
    assert "'missing'" in issues[0].msg


def test_django_tasks_without_django_tasks_installed_is_e018(feedback_app, monkeypatch):
    feedback_app(QUEUE="django_tasks")
    # Neither django.tasks nor the backport importable, as on Django 5.2 without django-tasks.
    monkeypatch.setitem(sys.modules, "django.tasks", None)
    monkeypatch.setitem(sys.modules, "django_tasks", None)
    issues = check_settings()  # not run_checks(): Django 6's own checks import django.tasks
    assert [issue.id for issue in issues] == ["feedback_app.E018"]
    assert "django-tasks" in issues[0].hint


def test_django_tasks_on_a_backend_without_the_default_queue_is_e018(feedback_app, settings):
    settings.TASKS = {
        **settings.TASKS,
        "emails": {
            "BACKEND": f"{TASKS_API}.backends.immediate.ImmediateBackend",
            "QUEUES": ["emails"],
        },
    }
    feedback_app(QUEUE="django_tasks", TASKS_BACKEND="emails")
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.E018"]
    assert "'default'" in issues[0].msg


def test_django_tasks_on_a_dummy_backend_is_w018(feedback_app, settings):
    settings.TASKS = {
        **settings.TASKS,
        "dummy": {"BACKEND": f"{TASKS_API}.backends.dummy.DummyBackend"},
    }
    feedback_app(QUEUE="django_tasks", TASKS_BACKEND="dummy")
    issues = app_issues()
    assert [issue.id for issue in issues] == ["feedback_app.W018"]
    assert isinstance(issues[0], Warning)


@pytest.mark.parametrize("alias", ["default", "database"])
def test_django_tasks_on_an_immediate_or_database_backend_is_clean(feedback_app, alias):
    feedback_app(QUEUE="django_tasks", TASKS_BACKEND=alias)
    assert app_ids() == []


@pytest.mark.parametrize(
    "guard",
    [
        "on",
        {"RECIPIENT_LIMIT": 5},
        {"RECIPIENT_LIMIT": [5, 0]},
        {"VERIFICATION_LIMIT": [5]},
        {"ENABLED": "yes"},
        {"ALLOWED_COUNTRIES": {"*": ["XX"]}},
        {"BLOCKED_COUNTRIES": ["NG"]},
        {"MIN_ATTEMPTS": 0},
        {"MAX_CONVERSION": 1.5},
        {"DROP": -0.1},
        {"SETTLE": 3600},
        {"BLOCKS_REFRESH": True},
        {"SURPRISE": 1},
    ],
)
def test_bad_guard_settings_are_e030(feedback_app, guard):
    feedback_app(GUARD=guard)
    (issue,) = app_issues()
    assert issue.id == "feedback_app.E030"
    assert issue.hint


def test_a_guard_cache_that_does_not_exist_is_e031(feedback_app):
    feedback_app(GUARD={"CACHE": "nowhere"})
    assert app_ids() == ["feedback_app.E031"]


def test_a_dummy_guard_cache_is_w030(feedback_app, settings):
    settings.CACHES = {
        **settings.CACHES,
        "dummy": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    feedback_app(GUARD={"CACHE": "dummy"})
    assert app_ids() == ["feedback_app.W030"]


@pytest.mark.parametrize(
    "guard",
    [
        {"RECIPIENT_LIMIT": None, "COUNTRY_LIMIT": [1000, 3600]},
        {"ALLOWED_COUNTRIES": {"*": ["US", "GB"], "signup": ["US"]}},
        {"AUTO_BLOCK": False, "SETTLE": 0},
    ],
)
def test_sound_guard_settings_are_accepted(feedback_app, guard):
    feedback_app(GUARD=guard)
    assert app_ids() == []
