"""The OpenAPI schema: valid, complete, served only to users, and true to the API.

The last test runs schemathesis against every operation through the WSGI app with a
superuser's token: no 5xx, and every response matches the schema.
"""

from __future__ import annotations

import hashlib
import re

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.validation import validate_schema
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from feedback_app.api.schema import openapi_schema
from feedback_app.states import Channel, Delivery, Feedback
from feedback_app.tokens import confirmation_token

from ..factories import NUMBERS, make_message
from .conftest import API, make_user

SCHEMA = f"{API}/schema/"

OPERATIONS = {
    ("get", f"{API}/messages/"): "messages_list",
    ("post", f"{API}/messages/"): "messages_track",
    ("get", f"{API}/messages/{{id}}/"): "messages_retrieve",
    ("post", f"{API}/messages/send/"): "messages_send",
    ("post", f"{API}/messages/{{id}}/confirm/"): "messages_confirm",
    ("post", f"{API}/messages/{{id}}/fail/"): "messages_fail",
    ("post", f"{API}/messages/confirm/"): "messages_confirm_by_provider_id",
    ("post", f"{API}/confirm/{{token}}/"): "confirm_by_token",
    ("get", f"{API}/stats/"): "stats",
}


@pytest.fixture
def openapi(admin) -> dict:
    response = admin.get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    return response.json()


@pytest.mark.django_db
def test_schema_needs_a_login(anonymous):
    assert anonymous.get(SCHEMA).status_code == 401
    assert anonymous.get(f"{API}/docs/").status_code in (401, 403)


@pytest.mark.django_db
def test_schema_is_valid_openapi_3(openapi):
    assert openapi["openapi"].startswith("3.")
    validate_schema(openapi)


@pytest.mark.django_db
def test_schema_has_every_operation_and_only_this_api(openapi):
    found = {
        (method, path): operation["operationId"]
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    }
    assert found == OPERATIONS


@pytest.mark.django_db
def test_every_operation_documents_its_errors_with_the_error_shape(openapi):
    for path, methods in openapi["paths"].items():
        for method, operation in methods.items():
            errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
            assert "400" in errors or "404" in errors, (method, path)
            for response in errors.values():
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
            if path != f"{API}/confirm/{{token}}/":
                assert {"401", "403"} <= set(errors), (method, path)


@pytest.mark.django_db
def test_schema_enums_are_the_real_vocabularies(openapi):
    schemas = openapi["components"]["schemas"]
    assert set(schemas["ChannelEnum"]["enum"]) == set(Channel.values)
    assert set(schemas["DeliveryStatusEnum"]["enum"]) == set(Delivery.values)
    assert set(schemas["FeedbackEnum"]["enum"]) == set(Feedback.values)
    assert set(schemas["ProviderEnum"]["enum"]) == {"locmem", "silent"}


@pytest.mark.django_db
def test_write_only_fields_never_appear_in_responses(openapi):
    schemas = openapi["components"]["schemas"]
    assert "body" in schemas["SendRequest"]["properties"]
    assert "to" in schemas["TrackRequest"]["properties"]
    for name in ("Message", "MessageDetail", "TransitionResult", "PublicMessage"):
        assert not {"to", "body", "recipient_hash"} & set(schemas[name]["properties"]), name


@pytest.mark.django_db
def test_idempotency_key_is_documented_on_track_and_send(openapi):
    for path in (f"{API}/messages/", f"{API}/messages/send/"):
        parameters = openapi["paths"][path]["post"]["parameters"]
        assert [p["name"] for p in parameters if p["in"] == "header"] == ["Idempotency-Key"]
        assert {"409", "422"} <= set(openapi["paths"][path]["post"]["responses"])


@pytest.mark.django_db
def test_schema_generation_emits_no_warnings(admin, capsys):
    from drf_spectacular.drainage import GENERATOR_STATS

    GENERATOR_STATS.reset()
    admin.get(SCHEMA)
    assert not GENERATOR_STATS, capsys.readouterr().err


@pytest.mark.django_db
def test_docs_page_uses_only_local_assets(admin):
    response = admin.get(f"{API}/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.search(r"(src|href)=\"https?://", html)
    assert "validatorUrl" in html and '"validatorUrl": null' in html


def test_the_served_schema_is_the_one_schemathesis_tests(openapi):
    assert openapi == openapi_schema()


# -- schemathesis ------------------------------------------------------------------------------
# Loaded when the module is imported (no database needed), because the lazy loader
# (schemathesis.pytest.from_fixture) does not work with pytest 9; the test above shows it is
# exactly what api/schema/ serves.
schema = schemathesis.openapi.from_dict(openapi_schema())


@pytest.fixture
def wsgi_app():
    """The real WSGI app, keeping the test's connection open between requests (as Django's
    test client does), so the requests see the test's data and its transaction survives."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def known(db, settings) -> dict:
    """A superuser's token, and messages for the generated requests to hit."""
    # The throttles are tested elsewhere; here they would only hide operations behind 429s.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"feedback_app.send": None, "feedback_app.confirm": None},
    }
    user = make_user(superuser=True)
    return {
        "messages": [make_message() for _ in range(5)],
        "headers": {"Authorization": f"Token {Token.objects.create(user=user).key}"},
    }


def _coin(case: schemathesis.Case, salt: str) -> int:
    """A stable choice derived from the generated case, so runs are reproducible."""
    seed = repr((case.path_parameters, case.query, case.body, salt)).encode()
    return hashlib.sha256(seed).digest()[0]


def _aim_at_known_messages(case: schemathesis.Case, known: dict) -> None:
    """Replace about half the random ids, tokens and numbers with ones that exist."""
    messages = known["messages"]
    pick = messages[_coin(case, "message") % len(messages)]
    parameters = case.path_parameters or {}
    if "id" in parameters and _coin(case, "id") % 2:
        parameters["id"] = str(pick.pk)
    if "token" in parameters and _coin(case, "token") % 2:
        parameters["token"] = confirmation_token(pick)
    if isinstance(case.body, dict) and _coin(case, "body") % 2:
        if isinstance(case.body.get("to"), str):
            case.body["to"] = NUMBERS["GB"]
        if isinstance(case.body.get("provider_message_id"), str) and "to" not in case.body:
            case.body.update(provider="locmem", provider_message_id=pick.provider_message_id)


@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(case, known, wsgi_app):
    _aim_at_known_messages(case, known)
    case.call_and_validate(
        app=wsgi_app,
        headers=known["headers"],
        checks=[not_a_server_error, response_schema_conformance],
    )
