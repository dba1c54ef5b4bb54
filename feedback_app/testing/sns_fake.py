"""Amazon SNS's side of an HTTP(S) subscription, played locally: signed notifications posted to a
webhook, and the signing certificate served for it to fetch.

``SnsPublisher`` signs like SNS (``SignatureVersion`` 2, SHA256withRSA over the canonical string)
with a key and a self-signed certificate issued to ``sns.amazonaws.com``, as SNS's are, and
retries a 5xx or 429 answer as SNS's delivery policy does. Its certificate is not at an SNS URL,
so the webhook trusts it only when the provider's ``SNS_DEV_CERTIFICATE_URLS`` names its prefix,
which works with ``DEBUG`` on only. Example, in a host project's test::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.sns_fake import SnsPublisher

    sns = SnsPublisher()
    with FakeServer(sns) as certificates:  # serves the certificate under /sns/
        # settings: DEBUG = True, and the aws_sms provider has
        # "SNS_DEV_CERTIFICATE_URLS": [certificates.url + "/sns/"]
        certificate_url = sns.certificate_url(certificates.url)
        envelope = sns.notification(
            topic_arn=TOPIC, message=json.dumps(record), certificate_url=certificate_url
        )
        assert sns.publish(webhook_url, envelope, basic_auth="sns:password") == 200
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .carrier import post

#: Where the certificate is served, under the fake's own URL.
CERTIFICATE_PATH = "/sns/"

#: Seconds between the attempts after a 5xx or 429 (SNS's default HTTP policy makes three
#: retries 20 seconds apart; a demo should not wait that long).
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)


class SnsPublisher:
    """Signs SNS notifications and posts them; a WSGI app serving its certificate."""

    def __init__(self, *, retry_delays: Sequence[float] = RETRY_DELAYS) -> None:
        self.retry_delays = tuple(retry_delays)
        #: The HTTP status of every delivery attempt (None: unreachable), oldest first.
        self.answers: list[int | None] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(self._key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        self.certificate_file = f"SimpleNotificationService-{uuid.uuid4().hex}.pem"

    def certificate_url(self, base_url: str) -> str:
        """The URL of the certificate when this app is served at ``base_url``."""
        return f"{base_url.rstrip('/')}{CERTIFICATE_PATH}{self.certificate_file}"

    def notification(
        self,
        *,
        topic_arn: str,
        message: str,
        certificate_url: str,
        subject: str | None = None,
    ) -> dict[str, Any]:
        """A signed ``Notification`` as SNS posts it (the JSON body)."""
        timestamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        envelope: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": message,
            "Timestamp": timestamp.replace("+00:00", "Z"),
            "SignatureVersion": "2",
            "SigningCertURL": certificate_url,
            "UnsubscribeURL": f"{certificate_url.rsplit('/', 2)[0]}/?Action=Unsubscribe",
        }
        if subject is not None:
            envelope["Subject"] = subject
        signature = self._key.sign(_string_to_sign(envelope), padding.PKCS1v15(), hashes.SHA256())
        envelope["Signature"] = base64.b64encode(signature).decode()
        return envelope

    def publish(
        self, url: str, envelope: dict[str, Any], *, basic_auth: str | None = None
    ) -> int | None:
        """POST ``envelope`` to ``url`` as SNS does; retried after a 5xx or 429 answer.

        ``basic_auth`` ("user:password") is the subscription URL's credentials. Returns the last
        HTTP status, None if the webhook could not be reached at all.
        """
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-message-id": envelope["MessageId"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
        }
        if basic_auth:
            headers["Authorization"] = "Basic " + base64.b64encode(basic_auth.encode()).decode()
        data = json.dumps(envelope).encode()
        status: int | None = None
        for delay in (0.0, *self.retry_delays):
            time.sleep(delay)
            status = post(url, data, headers)
            self.answers.append(status)
            if status is not None and status < 500 and status != 429:
                return status
        return status

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CERTIFICATE_PATH + self.certificate_file:
            headers = [("Content-Type", "application/x-pem-file")]
            start_response("200 OK", [*headers, ("Content-Length", str(len(self.pem)))])
            return [self.pem]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such certificate\n"]


def _string_to_sign(envelope: dict[str, Any]) -> bytes:
    # AWS's documented order for a Notification; Subject only when there is one.
    names = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
    return "".join(f"{name}\n{envelope[name]}\n" for name in names if name in envelope).encode()
