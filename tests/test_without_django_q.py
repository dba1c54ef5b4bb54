"""With QUEUE "django_tasks" a project runs without django-q2: ``django_q`` is not in
INSTALLED_APPS, and nothing imports it, from start-up through migrate, the checks, the admin, a
send, a confirmation delivered to the provider, and the periodic jobs.

A fresh interpreter proves it: this process has django-q2 loaded by the test settings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Run in the subprocess. Any import of django_q fails loudly and is recorded, so code that
#: catches ImportError cannot hide it.
SCRIPT = r"""
import importlib.abc, json, sys


class BlockDjangoQ(importlib.abc.MetaPathFinder):
    attempts = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "django_q":
            self.attempts.append(name)
            raise ImportError(f"{name}: django-q2 must not be imported here")
        return None


blocker = BlockDjangoQ()
sys.meta_path.insert(0, blocker)

import django

django.setup()
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

import feedback_app
from feedback_app.models import ProviderCall
from feedback_app.providers import locmem

call_command("migrate", verbosity=0)
call_command("check", fail_level="WARNING")
message = feedback_app.send(provider="locmem", to="+14155550123", body="Your code is 123456")
confirmed = feedback_app.confirm(message)  # autocommit: the hand-off runs at once
call_command("feedback_worker", "--once", verbosity=0)

admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
client = Client(HTTP_HOST="localhost")
client.force_login(admin)
pages = {
    url: client.get(url).status_code
    for url in ("/admin/", "/admin/feedback_app/message/", "/admin/feedback_app/providercall/")
}
print(json.dumps({
    "installed": "django_q" in settings.INSTALLED_APPS,
    "confirmed": confirmed,
    "calls": list(ProviderCall.objects.values_list("state", flat=True)),
    "reports": [report["outcome"] for report in locmem.reports],
    "pages": pages,
    "attempts": blocker.attempts,
    "loaded": sorted(name for name in sys.modules if name.split(".")[0] == "django_q"),
}))
"""


def test_on_django_tasks_nothing_imports_django_q(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env |= {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "FEEDBACK_QUEUE": "django_tasks",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["attempts"] == [] and result["loaded"] == [], result
    assert result["installed"] is False
    assert result["confirmed"] is True
    assert (result["calls"], result["reports"]) == (["succeeded"], ["confirmed"])
    assert set(result["pages"].values()) == {200}, result["pages"]
