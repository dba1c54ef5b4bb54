"""A page only a user verified with a second factor may see: the end of the OTP example.

Log in at ``/account/login/``; a user with a phone device (set up at
``/account/two_factor/setup/``) gets a text message through ``feedback_app.send``, and typing
its code confirms that message (``feedback_app.integrations.two_factor``).
"""

from django.http import HttpRequest, HttpResponse
from django_otp.decorators import otp_required


@otp_required(login_url="two_factor:login")
def protected(request: HttpRequest) -> HttpResponse:
    device = request.user.otp_device
    return HttpResponse(f"Hello {request.user.get_username()}, verified with {device.name}.")
