"""Signed confirmation tokens: a link or a frontend confirms exactly one message, and only
until that message's feedback window closes.

A token is the message's UUID signed with ``django.core.signing`` (HMAC-SHA256 over
``SECRET_KEY``, rotated keys in ``SECRET_KEY_FALLBACKS`` still verify) under a salt of its own,
so no other signed value of the site is a token. It carries no deadline: the message's own
``feedback_deadline`` is read when the token is used, so the token can be made before the
message is tracked (from the id passed to ``track(message_id=...)``) and put in its body.
``confirmation_url`` is the absolute link ``c/<token>/`` for that body.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from django.core import signing
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from .conf import app_settings
from .models import Message

#: Salt of the signature; changing it invalidates every token issued.
SALT = "feedback_app.tokens.confirm"
# "." instead of ":": some SMS apps end a detected link at a colon.
_SEPARATOR = "."


class InvalidToken(Exception):
    """The token is malformed, tampered with, or was not made by ``confirmation_token``."""

    code = "invalid_token"


class ExpiredToken(InvalidToken):
    """The token is genuine but its message's feedback window has closed."""

    code = "token_expired"


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=_SEPARATOR)


def confirmation_token(message: Message | uuid.UUID | str) -> str:
    """A URL-safe token that confirms ``message`` (a Message or its public UUID)."""
    message_id = message.pk if isinstance(message, Message) else uuid.UUID(str(message))
    encoded = base64.urlsafe_b64encode(message_id.bytes).rstrip(b"=").decode()
    return _signer().sign(encoded)


def confirmation_url(message: Message | uuid.UUID | str, request: HttpRequest | None = None) -> str:
    """The absolute confirmation link (``c/<token>/``) of ``message``, for its body.

    Built on ``FEEDBACK_APP["PUBLIC_URL"]`` when it is set, else on ``request``'s host.
    """
    path = reverse("feedback_app:confirm-link", args=[confirmation_token(message)])
    if app_settings.PUBLIC_URL:
        return str(app_settings.PUBLIC_URL).rstrip("/") + path
    if request is None:
        raise ImproperlyConfigured(
            "confirmation_url() needs FEEDBACK_APP['PUBLIC_URL'] or a request to build a link."
        )
    return request.build_absolute_uri(path)


def message_id_from_token(token: str) -> uuid.UUID:
    """The UUID a token was made for. Raises ``InvalidToken``; does not look at the database."""
    if not isinstance(token, str) or len(token) > 200:
        raise InvalidToken("malformed token")
    try:
        encoded = _signer().unsign(token)
        return uuid.UUID(bytes=base64.urlsafe_b64decode(encoded + "=="))
    except (signing.BadSignature, binascii.Error, ValueError) as exc:
        raise InvalidToken("bad token") from exc


def message_from_token(token: str) -> Message:
    """The message a token confirms, while its feedback window is open.

    Raises ``InvalidToken`` (bad or foreign token), ``ExpiredToken`` (window closed) or
    ``Message.DoesNotExist`` (a genuine token whose message is gone).
    """
    message = Message.objects.get(pk=message_id_from_token(token))
    if timezone.now() > message.feedback_deadline:
        raise ExpiredToken("the feedback window of this message has closed")
    return message


__all__ = [
    "ExpiredToken",
    "InvalidToken",
    "confirmation_token",
    "confirmation_url",
    "message_from_token",
    "message_id_from_token",
]
