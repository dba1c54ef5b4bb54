"""Turn a recipient into what may be stored: a keyed hash, a masked form and a country.

The clear number never leaves this module except towards the provider.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import phonenumbers
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from .conf import app_settings
from .errors import field_error
from .states import PHONE_CHANNELS

#: Prefixes a channel may put before a number ("whatsapp:+1...").
_CHANNEL_PREFIXES = ("whatsapp:", "mms:", "sms:")


@dataclass(frozen=True)
class Recipient:
    #: What the provider needs (E.164 for phone channels).
    address: str
    hash: str
    masked: str
    country: str
    #: Country calling code and national destination code ("+4479"), "" for non-phone
    #: addresses: what the guard counts and blocks (see ``destination_prefix``).
    prefix: str = ""


def recipient_hash(address: str) -> str:
    key = app_settings.HASH_KEY
    if not key:
        raise ImproperlyConfigured("FEEDBACK_APP['HASH_KEY'] is not set")
    return hmac.new(str(key).encode(), address.encode(), hashlib.sha256).hexdigest()


def mask(address: str, keep: int = 4) -> str:
    """``+14155550123`` -> ``+1*******0123``; keeps the country code of a number."""
    if address.startswith("+"):
        try:
            number = phonenumbers.parse(address)
            head = f"+{number.country_code}"
        except phonenumbers.NumberParseException:
            head = "+"
    else:
        head = ""
    hidden = max(len(address) - len(head) - keep, 0)
    # Long opaque addresses (channel ARNs) are cut to a bounded mask.
    return head + "*" * min(hidden, 16) + address[len(head) + hidden :]


#: A number in E.164 as providers quote it in their messages ("... the 'To' number: +44...").
_E164_IN_TEXT = re.compile(r"\+[1-9][0-9]{6,14}(?![0-9])")


def mask_numbers_in(text: str) -> str:
    """``text`` with every E.164 number in it masked (a provider's error message that quotes
    the recipient is logged and stored)."""
    return _E164_IN_TEXT.sub(lambda match: mask(match[0]), text)


def parse_recipient(to: object, channel: str, field: str = "to") -> Recipient:
    """Validate ``to`` for ``channel``; raises ``ValidationError`` naming ``field``."""
    if not isinstance(to, str) or not to.strip():
        raise field_error(field, _("Enter a recipient address."), "invalid")
    to = to.strip()
    if "\x00" in to:
        # PostgreSQL refuses NUL in text, and the masked form keeps the last characters.
        raise field_error(field, _("NUL characters are not allowed."), "null_characters")
    if channel not in PHONE_CHANNELS:
        if len(to) > 1024:
            raise field_error(field, _("The address is too long."), "max_length")
        return Recipient(address=to, hash=recipient_hash(to), masked=mask(to), country="")

    number_text = to
    for prefix in _CHANNEL_PREFIXES:
        if number_text.lower().startswith(prefix):
            number_text = number_text[len(prefix) :]
    try:
        number = phonenumbers.parse(number_text, app_settings.DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise field_error(
            field, _("Enter a valid phone number in E.164 form (+14155550123)."), "invalid_phone"
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise field_error(field, _("This phone number is not valid."), "invalid_phone")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Recipient(
        address=e164,
        hash=recipient_hash(e164),
        masked=mask(e164),
        country=_country(number),
        prefix=destination_prefix(number),
    )


#: Fewest numbers that a prefix and the masked form together may leave: with fewer, the two
#: stored side by side would come close to naming the recipient.
MIN_CANDIDATES = 10_000
#: Digits ``mask`` keeps at the end of a number.
MASK_KEEPS = 4


def destination_prefix(number: phonenumbers.PhoneNumber) -> str:
    """``+`` country calling code + national destination code (the operator or area range
    pumping targets), shortened until the digits neither it nor the masked form shows leave
    at least ``MIN_CANDIDATES`` numbers."""
    national = phonenumbers.national_significant_number(number)
    destination = phonenumbers.length_of_national_destination_code(number)
    if not destination:
        destination = phonenumbers.length_of_geographical_area_code(number)
    hidden_allowed = len(national) - MASK_KEEPS - len(str(MIN_CANDIDATES - 1))
    # The national number's leading zero ("+39 06...") is part of it: counted like any digit.
    shown = max(0, min(destination, hidden_allowed))
    return f"+{number.country_code}{national[:shown]}"


def candidates(prefix: str, masked: str) -> int:
    """How many numbers match both a prefix and a masked form (from ``mask``)."""
    hidden = masked.count("*")
    head = len(masked) - len(masked.lstrip("+0123456789"))  # "+" and the calling code
    covered = max(0, len(prefix) - head)
    return 10 ** max(0, hidden - covered)


def _country(number: phonenumbers.PhoneNumber) -> str:
    """The ISO 3166 code of the number's country; "" when it has none.

    Non-geographic numbers (+800 freephone, +870 Inmarsat, +881/+882 satellite and
    international networks) belong to phonenumbers' region "001", which is no country.
    """
    region = phonenumbers.region_code_for_number(number) or ""
    return region if len(region) == 2 and region.isalpha() else ""
