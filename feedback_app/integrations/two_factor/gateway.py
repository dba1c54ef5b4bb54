"""The django-two-factor-auth SMS gateway, and the confirmation of what it sent.

``Gateway.send_sms`` sends the token with ``feedback_app.send`` and records the device's
``persistent_id`` in the message's metadata; when two_factor's login wizard verifies a token of
that device in its token step (its ``user_verified`` signal, sent by that request), the device's
latest message is confirmed. The token itself is stored nowhere.

A code sent while the device's previous one is still pending is a resend: both are one
verification (keyed by the attempt's first message id), so confirming the latest supersedes the
earlier ones (docs/verifications.md).

A provider that cannot send (an outage, a refused number) or a send the guard refuses is logged,
not raised: two_factor's login view calls the gateway without catching anything, so an exception
would be a 500 on the login page. Instead the gateway leaves on the device (``NOT_SENT``) what
to tell the user, which the token step's template shows in place of "we sent you a text message"
(``feedback_app/two_factor/not_sent.html``); a backup token or another device still logs them in.

``user_verified`` is also sent when a "remember this browser" cookie
(``TWO_FACTOR_REMEMBER_COOKIE_AGE``) skips the token step: nobody typed a code then, so nothing is
confirmed. The request tells the two apart: only the token step posts a token.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from two_factor.views.core import LoginView

from ... import services
from ...conf import app_settings
from ...errors import SendBlocked
from ...models import Message
from ...providers.base import ProviderError
from ...recipients import recipient_hash
from ...states import Channel, Feedback

if TYPE_CHECKING:
    from django.http import HttpRequest
    from django_otp.models import Device

logger = logging.getLogger(__name__)

#: The ``Message.metadata`` key holding the django-otp ``persistent_id`` of the device.
DEVICE_KEY = "otp_device"

#: The device attribute that holds, when no code was sent, what to tell the user. two_factor's
#: login view renders the token step with the very device instance the gateway was given.
NOT_SENT = "feedback_app_not_sent"


class Gateway:
    """``TWO_FACTOR_SMS_GATEWAY``: sends through the provider in ``FEEDBACK_APP["TWO_FACTOR"]``.

    Only SMS: no built-in provider places voice calls, so keep ``TWO_FACTOR_CALL_GATEWAY`` on
    another gateway (or unset, which hides the phone-call method).
    """

    def send_sms(self, device: Device, token: str) -> Message | None:
        """Send ``token`` to the device's number; the message, or None when it was not sent
        (logged at ERROR; see the module docstring)."""
        config = app_settings.TWO_FACTOR
        if not config.get("PROVIDER"):
            raise ImproperlyConfigured(
                "Set FEEDBACK_APP['TWO_FACTOR']['PROVIDER'] to the provider key that sends "
                "two_factor's text messages."
            )
        message_id, attempt = _attempt(device)
        try:
            return services.send(
                provider=config["PROVIDER"],
                to=device.number.as_e164,
                body=config["BODY"].format(token=token),
                purpose=config["PURPOSE"],
                channel=Channel.SMS,
                sender=config.get("SENDER"),
                metadata={DEVICE_KEY: device.persistent_id},
                message_id=message_id,
                verification=attempt,
            )
        except SendBlocked as refusal:
            # The guard's decision, not a fault: WARNING, with what to do about it.
            wait = (
                f"; the limit lifts in {refusal.retry_after} s"
                if refusal.retry_after
                else "; see manage.py feedback_guard"
            )
            logger.warning(
                "feedback_app: two_factor's code for device %s was not sent: the SMS guard "
                "refused it (%s: %s)%s",
                device.persistent_id,
                refusal.code,
                refusal.message,
                wait,
            )
            setattr(device, NOT_SENT, refused_text(refusal))
            return None
        except (ProviderError, ValidationError) as exc:
            # No traceback: error trackers record its frames' locals, the token and number.
            # A ProviderError's text has its numbers masked; a ValidationError's names none.
            logger.error(
                "feedback_app: two_factor's code for device %s was not sent through %r: %s: %s",
                device.persistent_id,
                config["PROVIDER"],
                type(exc).__name__,
                exc,
            )
            setattr(
                device,
                NOT_SENT,
                _(
                    "The text message could not be sent. Try again later, or use a backup "
                    "token or another method."
                ),
            )
            return None


def refused_text(refusal: SendBlocked) -> str:
    """What the login page tells a user whose code the guard refused: when to try again for a
    rate limit; otherwise (a blocked prefix or country) that no text message can go there."""
    if refusal.retry_after:
        minutes = max(1, math.ceil(refusal.retry_after / 60))
        return ngettext(
            "Too many codes were requested for this number. Try again in %(minutes)d minute, "
            "or use a backup token or another method.",
            "Too many codes were requested for this number. Try again in %(minutes)d minutes, "
            "or use a backup token or another method.",
            minutes,
        ) % {"minutes": minutes}
    return _(
        "Text messages cannot be sent to this number at the moment. Use a backup token or "
        "another method."
    )


def _attempt(device: Device) -> tuple[uuid.UUID, str]:
    """The new message's id and its verification key: the attempt of the device's latest
    message while that one is still pending, else a new attempt named after this message."""
    message_id = uuid.uuid4()
    latest = latest_message(device)
    if latest is not None and latest.feedback == Feedback.PENDING and latest.verification_id:
        first = (
            Message.objects.filter(verification_id=latest.verification_id, resend=False)
            .values_list("pk", flat=True)
            .first()
        )
        if first is not None:
            return message_id, f"two_factor:{first}"
    return message_id, f"two_factor:{message_id}"


def latest_message(device: Device) -> Message | None:
    """The last message sent to ``device`` through ``Gateway``: the one whose token is valid.

    Earlier ones are left to expire, even if their code still verifies: a resend means the
    user did not use them in time.
    """
    return (
        Message.objects.filter(
            # The hash narrows by an indexed column; the device id tells two accounts apart
            # that share a number.
            recipient_hash=recipient_hash(device.number.as_e164),
            **{f"metadata__{DEVICE_KEY}": device.persistent_id},
        )
        .order_by("-sent_at")
        .first()
    )


def confirm_device(device: Device, *, actor: object = None) -> bool:
    """Confirm the last message sent to ``device``; True if this call confirmed it.

    A message that expired meanwhile is confirmed late; one confirmed already is left as is.

    For a hand-written verification view: ``if device.verify_token(token): confirm_device(device)``.
    """
    message = latest_message(device) if hasattr(device, "number") else None
    if message is None:
        return False
    return services.confirm(message, actor=actor)


def typed_a_token(request: HttpRequest | None) -> bool:
    """Whether ``request`` submitted the login wizard's token step with a token.

    two_factor sends ``user_verified`` from the request that completes the wizard. After a typed
    code that is the token step's POST, which the wizard only accepts once the token form has
    verified the code; a remembered browser completes the wizard with the password step's POST,
    which carries no token.
    """
    if request is None or request.method != "POST":
        return False
    step = LoginView.TOKEN_STEP
    # formtools' management field is "<wizard prefix>-current_step"; each step's form fields
    # are prefixed with the step's name ("token-otp_token").
    posted_steps = {value for key, value in request.POST.items() if key.endswith("-current_step")}
    return posted_steps == {step} and bool(request.POST.get(f"{step}-otp_token", "").strip())


def confirm_on_verified(
    sender: Any, request: HttpRequest | None, user: Any, device: Device, **kwargs: Any
) -> None:
    """``two_factor.signals.user_verified`` receiver: the token the user typed was delivered.

    Nothing is confirmed when no token was typed in this request (a remembered browser).
    """
    if getattr(device, "method", None) == "sms" and typed_a_token(request):
        confirm_device(device, actor=user)
