"""The example project as `make demo` serves it: the admin URL it prints leads to a login page
that takes the demo credentials and ends in the admin."""

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


def test_the_admin_url_leads_to_a_login_that_ends_in_the_admin(client):
    get_user_model().objects.create_superuser("demo", "demo@example.com", "demo")

    page = client.get("/admin/", follow=True)
    assert page.status_code == 200
    login_url, _ = page.redirect_chain[-1]
    assert login_url.startswith("/account/login/")

    done = client.post(
        login_url,
        {"login_view-current_step": "auth", "auth-username": "demo", "auth-password": "demo"},
        follow=True,
    )
    assert done.status_code == 200
    assert done.redirect_chain[-1][0] == "/admin/"
    assert done.context["user"].is_superuser
