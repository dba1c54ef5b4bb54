"""Verifications: the attempt (a login, a sign-up) a message and its resends belong to.

The host names an attempt with its own key (a login attempt id, a session key...). The key may
identify a person, so it is never stored: a Verification is found by the key's HMAC, made with
HASH_KEY as the recipient hash is but apart from it (a key equal to a phone number must not
give that number's hash). State changes stay in ``services``.
"""

from __future__ import annotations

import hashlib
import hmac

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from .conf import app_settings
from .errors import field_error
from .models import Message, Verification
from .recipients import Recipient

#: Longest key accepted; only its hash is stored, the bound just refuses nonsense.
KEY_MAX_LENGTH = 255

#: Keeps the key's HMAC apart from the recipient's with the same HASH_KEY.
_KEY_CONTEXT = b"feedback_app.verification:"


def key_hash(key: str) -> str:
    """The stored form of a host's verification key: HMAC-SHA256 with HASH_KEY."""
    secret = app_settings.HASH_KEY
    if not secret:
        raise ImproperlyConfigured("FEEDBACK_APP['HASH_KEY'] is not set")
    return hmac.new(str(secret).encode(), _KEY_CONTEXT + key.encode(), hashlib.sha256).hexdigest()


def check_key(key: object) -> str | None:
    """The key's hash, None without a key; raises ``ValidationError`` for a bad one."""
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise field_error("verification", _("Expected a non-empty string."))
    if len(key) > KEY_MAX_LENGTH:
        raise field_error(
            "verification",
            _("At most %(max)d characters.") % {"max": KEY_MAX_LENGTH},
            "max_length",
        )
    if "\x00" in key:
        raise field_error("verification", _("NUL characters are not allowed."), "null_characters")
    return key_hash(key)


def _check_same_attempt(verification: Verification, recipient: Recipient, purpose: str) -> None:
    """A key names one attempt: one recipient, one purpose."""
    if verification.recipient_hash != recipient.hash or verification.purpose != purpose:
        raise field_error(
            "verification",
            _(
                "This verification key is already used for another recipient or purpose; "
                "use a new key for a new attempt."
            ),
            "verification_mismatch",
        )


def check_existing(hashed: str | None, recipient: Recipient, purpose: str) -> None:
    """Refuse, before anything is sent, a key already used for another recipient or purpose."""
    if hashed is None:
        return
    verification = Verification.objects.filter(key_hash=hashed).first()
    if verification is not None:
        _check_same_attempt(verification, recipient, purpose)


def attach(message: Message, hashed: str, recipient: Recipient) -> None:
    """Put ``message`` (not saved yet) in the verification of ``hashed``, created if new.

    Must run in the transaction that inserts the message. Two first sends of one key at once
    end in one row. A resend bumps the verification's count and the first message's
    ``updated_at``, so the rollups recount the hour that carries the verification.
    """
    # get_or_create inserts in a savepoint and reads the row again when the INSERT hits the
    # unique key: on PostgreSQL the second INSERT waits for the first transaction, then fails.
    verification, created = Verification.objects.get_or_create(
        key_hash=hashed,
        defaults={
            "purpose": message.purpose,
            "recipient_hash": recipient.hash,
            "country": recipient.country,
            "created_at": message.sent_at,
        },
    )
    _check_same_attempt(verification, recipient, message.purpose)
    message.verification = verification
    message.resend = not created
    if not created:
        Verification.objects.filter(pk=verification.pk).update(resends=F("resends") + 1)
        Message.objects.filter(verification=verification, resend=False).update(
            updated_at=timezone.now()
        )
