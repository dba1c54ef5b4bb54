"""The confirmation link, ``c/<token>/``: a recipient who opens it has converted.

Twilio counts "the user clicked a unique link in the message" as a conversion. The link
confirms exactly the message its token was made for, then redirects to
``FEEDBACK_APP["CONFIRM_REDIRECT_URL"]``. Link previewers that fetch URLs found in messages
would confirm too; where that matters, confirm from your own page with ``POST api/confirm/``.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View

from . import services
from .api.throttling import ConfirmThrottle
from .conf import app_settings
from .models import Message
from .states import Source
from .tokens import ExpiredToken, InvalidToken, message_from_token


def _private(response: HttpResponse) -> HttpResponse:
    # The token is in this URL: keep it out of caches and out of the next page's Referer.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


# Recipients open the link without logging in; under LoginRequiredMiddleware a redirect to the
# login page would also put the token into its ``next=``.
@method_decorator(login_not_required, name="dispatch")
class ConfirmLinkView(View):
    http_method_names = ["get"]

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        throttle = ConfirmThrottle()
        if not throttle.allow_request(request, self):
            response = HttpResponse(_("Too many requests."), status=429, content_type="text/plain")
            wait = throttle.wait()
            if wait:
                response["Retry-After"] = str(int(wait))
            return _private(response)
        try:
            message = message_from_token(token)
        except ExpiredToken:
            return self.invalid(_("This link has expired."), status=400)
        except InvalidToken:
            return self.invalid(_("This link is not valid."), status=400)
        except Message.DoesNotExist:
            return self.invalid(_("This link is not valid."), status=404)
        services.confirm(message, source=Source.API, actor="link")
        return _private(HttpResponseRedirect(resolve_url(app_settings.CONFIRM_REDIRECT_URL)))

    def invalid(self, text: str, status: int) -> HttpResponse:
        url = app_settings.CONFIRM_INVALID_URL
        if url:
            return _private(HttpResponseRedirect(resolve_url(url)))
        return _private(HttpResponse(text, status=status, content_type="text/plain"))
