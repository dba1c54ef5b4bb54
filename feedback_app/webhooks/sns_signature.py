"""Verify that an Amazon SNS message was signed by SNS (SignatureVersion 1 and 2).

The signature covers a canonical string of the message's fields; the key is in a certificate
fetched over HTTPS from an SNS host only (``is_sns_url``) and issued to an SNS signing name
(``SIGNING_NAME``), then cached. boto3 does not do this, and none of the small libraries that do is
mature, so it is done here with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptographyInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

#: Host names of SNS endpoints (aws and aws-cn partitions), matched against the whole host.
SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")

#: Names SNS signing certificates are issued to: ``sns.amazonaws.com`` in most regions, and per
#: region elsewhere (``sns-signing.<region>.amazonaws.com`` in opt-in regions,
#: ``sns-cn-north-1.amazonaws.com.cn``, ``sns-us-gov-west-1.amazonaws.com``), as the AWS SDK for
#: Java's SNS message manager expects them. The ``.cn`` ending must match the certificate URL's.
SIGNING_NAME = re.compile(r"sns(?:-signing\.[a-z0-9-]+|-[a-z0-9-]+)?\.amazonaws\.com(\.cn)?")

#: Signed fields per message type, in signing order. Notification's ``Subject`` is signed only
#: when the message has one.
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION_FIELDS,
    "UnsubscribeConfirmation": _CONFIRMATION_FIELDS,
}
OPTIONAL_FIELDS = frozenset({"Subject"})

#: SignatureVersion -> digest of the RSA PKCS#1 v1.5 signature.
HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

#: Seconds to wait for an SNS host (certificate, subscription confirmation).
FETCH_TIMEOUT = 5.0
#: Seconds a fetched certificate is trusted before it is fetched again. SNS publishes a new
#: certificate under a new URL when it rotates keys, so one URL's content does not change.
CERTIFICATE_TTL = 24 * 3600
#: Certificates kept at most; SNS uses one or two per region at a time.
CERTIFICATE_CACHE_SIZE = 32


class InvalidSignature(Exception):
    """The message is not provably from SNS: refuse it."""


class CertificateUnavailable(Exception):
    """The SNS host could not be reached for the certificate: ask SNS to try again later."""


def is_sns_url(url: object, *, certificate: bool = False) -> bool:
    """True for ``https://sns.<region>.amazonaws.com[.cn]/...`` and nothing else.

    No user info, no port, no whitespace or control characters (which ``urlsplit`` would
    silently drop); a certificate URL must name a ``.pem`` file without a query.
    """
    if not isinstance(url, str) or not url.isascii() or any(c <= " " or c == "\x7f" for c in url):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    # The host must be the whole network location: this rejects "user@", ":443" and friends.
    if parts.scheme != "https" or port is not None or parts.netloc != parts.hostname:
        return False
    if not SNS_HOST.fullmatch(parts.netloc):
        return False
    if certificate:
        return parts.path.endswith(".pem") and not parts.query and not parts.fragment
    return True


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect could lead away from the SNS host that was checked.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> bytes:
    """GET an SNS URL (already checked with ``is_sns_url``) and return the body.

    Raises ``urllib.error.HTTPError`` for an error status, ``OSError`` when the host cannot be
    reached. The one place this module touches the network: tests patch it.
    """
    with _opener.open(url, timeout=timeout) as response:  # noqa: S310 (https only, checked)
        return response.read()


def certificate_names(certificate: x509.Certificate) -> list[str]:
    """The names a certificate is issued to: its DNS subject alternative names if it has any,
    else its subject's common names (as hostname verification reads them, RFC 6125)."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names = san.value.get_values_for_type(x509.DNSName)
        if names:
            return names
    return [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]


def is_sns_certificate(certificate: x509.Certificate, url: str) -> bool:
    """True when the certificate is issued to an SNS signing name of the URL's partition."""
    china = (urlsplit(url).hostname or "").endswith(".cn")
    for name in certificate_names(certificate):
        match = SIGNING_NAME.fullmatch(name.lower())
        if match is not None and bool(match.group(1)) == china:
            return True
    return False


def is_trusted_url(url: object, extra_prefixes: Iterable[str] = ()) -> bool:
    """An SNS certificate URL, or one under a prefix of ``extra_prefixes`` (a local fake)."""
    if is_sns_url(url, certificate=True):
        return True
    return isinstance(url, str) and any(
        isinstance(prefix, str) and prefix.endswith("/") and url.startswith(prefix)
        for prefix in extra_prefixes
    )


_certificates: dict[str, tuple[float, rsa.RSAPublicKey]] = {}
_lock = threading.Lock()


def clear_certificate_cache() -> None:
    with _lock:
        _certificates.clear()


def certificate_key(url: str, extra_prefixes: Iterable[str] = ()) -> rsa.RSAPublicKey:
    """The RSA public key of the signing certificate at ``url``, cached per URL.

    ``extra_prefixes``: URL prefixes trusted besides SNS's (``SNS_DEV_CERTIFICATE_URLS``).
    """
    if not is_trusted_url(url, extra_prefixes):
        raise InvalidSignature(f"signing certificate URL is not an SNS URL: {url!r}")
    now = time.monotonic()
    with _lock:
        cached = _certificates.get(url)
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        pem = fetch(url)
    except urllib.error.HTTPError as exc:
        # The SNS host answered and has no such certificate: the URL was made up.
        raise InvalidSignature(f"no certificate at {url} (HTTP {exc.code})") from exc
    except OSError as exc:
        raise CertificateUnavailable(f"could not fetch {url}: {exc}") from exc
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise InvalidSignature(f"{url} is not a PEM certificate") from exc
    if not is_sns_certificate(certificate, url):
        # An SNS host serving some other certificate (or a file that merely parses as one).
        names = ", ".join(certificate_names(certificate)) or "no name"
        raise InvalidSignature(f"signing certificate is issued to {names}, not to SNS")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidSignature("signing certificate does not hold an RSA key")
    wall_now = datetime.now(UTC)
    if not certificate.not_valid_before_utc <= wall_now <= certificate.not_valid_after_utc:
        raise InvalidSignature("signing certificate is not valid now")
    remaining = (certificate.not_valid_after_utc - wall_now).total_seconds()
    with _lock:
        if len(_certificates) >= CERTIFICATE_CACHE_SIZE:
            _certificates.clear()
        _certificates[url] = (now + min(CERTIFICATE_TTL, remaining), key)
    return key


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical ``name\\nvalue\\n`` string SNS signs for this message's type."""
    fields = SIGNED_FIELDS.get(message.get("Type"))
    if fields is None:
        raise InvalidSignature(f"unknown message type {message.get('Type')!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None and name in OPTIONAL_FIELDS:
            continue
        if not isinstance(value, str):
            raise InvalidSignature(f"{name} is missing or not a string")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def verify(message: Mapping[str, Any], extra_prefixes: Iterable[str] = ()) -> None:
    """Return if SNS signed ``message`` (the parsed JSON body), else raise ``InvalidSignature``.

    Raises ``CertificateUnavailable`` when the certificate cannot be fetched just now.
    ``extra_prefixes`` are certificate URL prefixes trusted besides SNS's (a local fake).
    """
    algorithm = HASHES.get(message.get("SignatureVersion"))
    if algorithm is None:
        raise InvalidSignature(f"unsupported SignatureVersion {message.get('SignatureVersion')!r}")
    signature = message.get("Signature")
    if not isinstance(signature, str):
        raise InvalidSignature("unsigned message")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSignature("Signature is not base64") from exc
    signed = string_to_sign(message)
    key = certificate_key(message.get("SigningCertURL", ""), extra_prefixes)
    try:
        key.verify(raw_signature, signed, padding.PKCS1v15(), algorithm())
    except _CryptographyInvalidSignature as exc:
        raise InvalidSignature("signature does not match") from exc
