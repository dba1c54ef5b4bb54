"""Fixtures of the API tests: users with exactly the permissions a test names."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_message

API = "/feedback/api"
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    """Throttle counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def make_user(*codenames: str, superuser: bool = False) -> User:
    name = f"user{next(_names)}"
    if superuser:
        return User.objects.create_superuser(name, f"{name}@example.com", "pw")
    user = User.objects.create_user(name, password="pw")
    for codename in codenames:
        app_label, _, code = codename.rpartition(".")
        app_label = app_label or "feedback_app"
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=code)
        )
    return user


def json_client(**kwargs: object) -> APIClient:
    """The API reads JSON only; send it by default."""
    client = APIClient(**kwargs)
    client.default_format = "json"
    return client


def token_client(user: User | None) -> APIClient:
    """A client that authenticates like a service: ``Authorization: Token <key>``."""
    client = json_client()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def client_with(db) -> Callable[..., APIClient]:
    """``client_with("view_message", "confirm_message")``: a token client with those permissions."""

    def build(*codenames: str) -> APIClient:
        return token_client(make_user(*codenames))

    return build


@pytest.fixture
def anonymous(db) -> APIClient:
    return json_client()


@pytest.fixture
def admin(db) -> APIClient:
    return token_client(make_user(superuser=True))


@pytest.fixture
def message(db):
    return make_message()
