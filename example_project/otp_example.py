"""The end of the two-factor example (docs/otp.md): a page only a verified user may see, and,
for staff while DEBUG is on, the text messages the ``locmem`` provider "sent" so the code can be
read.

Log in at ``/account/login/``; a user with a phone device (method *Text message*) gets the code
through ``feedback_app.send``, and typing it confirms that message
(``feedback_app.integrations.two_factor``).
"""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django_otp.decorators import otp_required

from feedback_app.providers import locmem


@otp_required(login_url="two_factor:login")
def protected(request: HttpRequest) -> HttpResponse:
    device = request.user.otp_device
    return HttpResponse(f"Hello {request.user.get_username()}, verified with {device.name}.")


def locmem_outbox(request: HttpRequest) -> HttpResponse:
    """The last messages sent through ``locmem`` in this process, newest first: with DEBUG on,
    for staff only (404 without DEBUG; anonymous users go to the login page, others get 403).

    A stand-in for the phone: it shows message bodies, which the app itself never stores, and
    so every two-factor code and confirmation link sent.
    """
    if not settings.DEBUG:
        raise Http404
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise PermissionDenied
    lines = [f"{sent['to']}: {sent['body']}" for sent in reversed(locmem.outbox)]
    return HttpResponse("\n".join(lines[:10]) or "No messages yet.", content_type="text/plain")
