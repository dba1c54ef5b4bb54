"""Every provider's fake behind one local port, for running the app end to end without a
provider (``manage.py feedback_fakes``, started by ``make demo``).

Requests are routed the way the SDKs address the real services: AWS JSON calls carry an
``X-Amz-Target`` header, Twilio's paths start with ``/2010-04-01/``, Chime's with ``/channels``,
and the SNS signing certificate is under ``/sns/``. The other providers' fakes are served under
``/<key>/``, the path their backends' ``BASE_URL`` ends with (``mounted_provider_settings``).

Each fake also plays what happens after the send, so the whole path runs:

- Twilio posts signed status callbacks (``sent``, then ``delivered`` or ``undelivered``) to the
  callback URL each message was created with; whether a message ends ``undelivered`` depends on
  its number alone, so a number always ends the same way (``+14155550123``, the README's, is
  delivered; ``+14155550125`` is not);
- AWS publishes each message's event records (``TEXT_SUCCESSFUL`` then ``TEXT_DELIVERED``, or a
  failure) through "SNS": signed notifications posted to the ``aws_sms`` webhook with the basic
  auth of its settings. The webhook trusts the fake's certificate only through
  ``SNS_DEV_CERTIFICATE_URLS``, with ``DEBUG`` on (the example project sets both);
- Chime answers some sends ``PENDING`` (a channel flow) and settles them later, mostly ``SENT``,
  some denied or failed, for the ``poll_statuses`` schedule to find;
- the others call their webhooks under ``PUBLIC_URL`` as each vendor does (signed, or with the
  basic auth or token their settings name), unreachable numbers ending undelivered.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from . import alibaba_fake, infobip_fake, plivo_fake, sinch_fake, telesign_fake, vonage_fake
from .alibaba_fake import CarrierAlibabaFake
from .aws_sms_fake import AwsSmsFake
from .carrier import call_later, post, unreachable
from .chime_fake import ChimeFake, FakeChannelMessage
from .infobip_fake import CarrierInfobipFake
from .plivo_fake import CarrierPlivoFake
from .sinch_fake import CarrierSinchFake
from .sns_fake import CERTIFICATE_PATH, SnsPublisher
from .telesign_fake import CarrierTelesignFake
from .twilio_fake import API_VERSION, AUTH_TOKEN, TwilioFake
from .vonage_fake import CarrierVonageFake

logger = logging.getLogger(__name__)


class CarrierTwilioFake(TwilioFake):
    """A ``TwilioFake`` whose messages move on by themselves and call back, signed.

    A message is ``sent`` after ``delays[0]`` seconds, then ``delivered`` or ``undelivered``
    (error 30003, unreachable handset) after ``delays[1]``. About ``undelivered_rate`` of the
    numbers are unreachable: which ones is fixed (``unreachable``), as a phone that is off, so
    a demo or a test that sends to a reachable number always sees it delivered.
    """

    def __init__(
        self,
        *,
        auth_token: str = AUTH_TOKEN,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(auth_token=auth_token, **kwargs)
        self.auth_token = auth_token
        self.delays = delays
        self.undelivered_rate = undelivered_rate

    def _create(self, form: dict[str, list[str]]) -> dict[str, Any]:
        payload = super()._create(form)
        callback = form.get("StatusCallback", [None])[-1]
        if callback:
            final = (
                "undelivered" if unreachable(payload["to"], self.undelivered_rate) else "delivered"
            )
            for delay, status in zip(self.delays, ("sent", final), strict=True):
                call_later(delay, self._call_back, payload, callback, status)
        return payload

    def _call_back(self, payload: dict[str, Any], url: str, status: str) -> None:
        from twilio.request_validator import RequestValidator

        error_code = 30003 if status == "undelivered" else None
        self.set_status(payload["sid"], status, error_code)
        params = {
            "AccountSid": payload["account_sid"],
            "ApiVersion": API_VERSION,
            "From": payload.get("from") or "",
            "MessageSid": payload["sid"],
            "MessageStatus": status,
            "SmsSid": payload["sid"],
            "SmsStatus": status,
            "To": payload["to"],
        }
        if error_code:
            params["ErrorCode"] = str(error_code)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        post(url, urlencode(params).encode(), {"X-Twilio-Signature": signature})


@dataclass(frozen=True)
class SnsTarget:
    """Where "SNS" delivers: the webhook URL, the credentials of the subscription URL, and the
    topic the events are published to."""

    url: str
    basic_auth: str
    topic_arn: str


def sns_target_from_settings(provider: str = "aws_sms") -> SnsTarget | None:
    """The ``provider``'s SNS webhook as the Django settings describe it: ``PUBLIC_URL`` and the
    provider's ``WEBHOOK_BASIC_AUTH`` and first ``SNS_TOPIC_ARNS``; None when one is missing."""
    from ..conf import app_settings
    from ..providers.base import webhook_url

    config = app_settings.PROVIDERS.get(provider) or {}
    topics = config.get("SNS_TOPIC_ARNS") or []
    topic = topics if isinstance(topics, str) else next(iter(topics), None)
    auth = config.get("WEBHOOK_BASIC_AUTH")
    public_url = app_settings.PUBLIC_URL
    if not (topic and auth and public_url):
        return None
    url = webhook_url("sns", provider, builtin_key="aws_sms")
    return SnsTarget(url=url, basic_auth=auth, topic_arn=topic)


#: Final events of the messages that fail, picked at random (rejected or undelivered).
FAILURE_EVENTS = ("TEXT_UNREACHABLE", "TEXT_CARRIER_UNREACHABLE", "TEXT_BLOCKED", "TEXT_SPAM")


class CarrierAwsSmsFake(AwsSmsFake):
    """An ``AwsSmsFake`` whose messages produce event records, published through ``sns``.

    A message gets ``TEXT_SUCCESSFUL`` (``isFinal: false``) then ``TEXT_DELIVERED`` after
    ``delays`` seconds, or one of ``FAILURE_EVENTS`` with probability ``failure_rate``. ``target``
    says where they go (default: ``sns_target_from_settings()`` when they are published); with no
    target nothing is published.
    """

    def __init__(
        self,
        *,
        sns: SnsPublisher,
        delays: tuple[float, float] = (1.0, 3.0),
        failure_rate: float = 0.1,
        target: Callable[[], SnsTarget | None] = sns_target_from_settings,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sns = sns
        self.delays = delays
        self.failure_rate = failure_rate
        self.target = target

    def _dispatch(
        self, environ: dict[str, Any], headers: dict[str, str], operation: str, body: Any
    ) -> dict[str, Any]:
        answer = super()._dispatch(environ, headers, operation, body)
        message_id = answer.get("MessageId")
        if operation == "SendTextMessage" and message_id in self.messages:
            # The certificate is served here, at the address the SDK reached us on.
            host = headers.get("host") or environ.get("SERVER_NAME", "127.0.0.1")
            certificate_url = self.sns.certificate_url(f"http://{host}")
            if random.random() < self.failure_rate:  # noqa: S311
                events = [(self.delays[0], random.choice(FAILURE_EVENTS), True)]  # noqa: S311
            else:
                events = [
                    (self.delays[0], "TEXT_SUCCESSFUL", False),
                    (self.delays[1], "TEXT_DELIVERED", True),
                ]
            for delay, event_type, is_final in events:
                timer = threading.Timer(
                    delay, self._publish, (message_id, event_type, is_final, certificate_url)
                )
                timer.daemon = True
                timer.start()
        return answer

    def _publish(
        self, message_id: str, event_type: str, is_final: bool, certificate_url: str
    ) -> None:
        target = self.target()
        if target is None:
            logger.info("no SNS webhook configured; event %s not published", event_type)
            return
        try:
            record = self.event_record(message_id, event_type, is_final=is_final)
        except KeyError:
            return  # the fake was reset meanwhile
        envelope = self.sns.notification(
            topic_arn=target.topic_arn,
            message=json.dumps(record),
            certificate_url=certificate_url,
        )
        status = self.sns.publish(target.url, envelope, basic_auth=target.basic_auth)
        if status != 200:
            logger.warning("SNS notification to %s answered %s", target.url, status)


class CarrierChimeFake(ChimeFake):
    """A ``ChimeFake`` where some sends go through a channel flow: they answer ``PENDING`` (with
    probability ``pending_rate``) and settle ``settle_after`` seconds later (uniform between the
    two bounds): ``DENIED`` with probability ``denied_rate``, ``FAILED`` with ``failed_rate``,
    else ``SENT``."""

    def __init__(
        self,
        *,
        pending_rate: float = 0.3,
        settle_after: tuple[float, float] = (5.0, 90.0),
        denied_rate: float = 0.1,
        failed_rate: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pending_rate = pending_rate
        self.settle_after = settle_after
        self.denied_rate = denied_rate
        self.failed_rate = failed_rate

    def _initial_status(self, channel_arn: str) -> tuple[str, str]:
        value, detail = super()._initial_status(channel_arn)
        if value == "SENT" and random.random() < self.pending_rate:  # noqa: S311
            return "PENDING", ""
        return value, detail

    def _created(self, message: FakeChannelMessage) -> None:
        if message.status == "PENDING":
            timer = threading.Timer(
                random.uniform(*self.settle_after),  # noqa: S311
                self._settle_later,
                (message.message_id,),
            )
            timer.daemon = True
            timer.start()

    def _settle_later(self, message_id: str) -> None:
        draw = random.random()  # noqa: S311
        if draw < self.denied_rate:
            value, detail = "DENIED", ""
        elif draw < self.denied_rate + self.failed_rate:
            value, detail = "FAILED", "processor unreachable"
        else:
            value, detail = "SENT", ""
        # KeyError: the fake was reset; ValueError: settled by hand meanwhile.
        with contextlib.suppress(KeyError, ValueError):
            self.settle(message_id, value, detail)


def mounted_provider_settings(url: str) -> dict[str, dict[str, Any]]:
    """``FEEDBACK_APP["PROVIDERS"]`` entries for the providers ``ProviderFakes`` serves under
    ``/<key>/`` of ``url``: the credentials their fakes accept (the example project's and the
    tests'). Statuses reach the webhooks under ``PUBLIC_URL``."""
    url = url.rstrip("/")
    return {
        "alibaba": {
            "ACCESS_KEY_ID": alibaba_fake.ACCESS_KEY_ID,
            "ACCESS_KEY_SECRET": alibaba_fake.ACCESS_KEY_SECRET,
            "BASE_URL": f"{url}/alibaba",
            "FROM": "AcmeOTP",
            "WEBHOOK_TOKEN": "demo-alibaba-token",
        },
        "infobip": {
            "API_KEY": infobip_fake.API_KEY,
            "BASE_URL": f"{url}/infobip",
            "FROM": "InfoSMS",
            "WEBHOOK_BASIC_AUTH": "infobip:demo-webhook-password",
        },
        "plivo": {
            "AUTH_ID": plivo_fake.AUTH_ID,
            "AUTH_TOKEN": plivo_fake.AUTH_TOKEN,
            "SRC": "14155550100",
            "BASE_URL": f"{url}/plivo",
        },
        "sinch": {
            "SERVICE_PLAN_ID": sinch_fake.SERVICE_PLAN_ID,
            "API_TOKEN": sinch_fake.API_TOKEN,
            "FROM": "+12065550100",
            "BASE_URL": f"{url}/sinch",
            "WEBHOOK_SECRET": sinch_fake.WEBHOOK_SECRET,
        },
        "telesign": {
            "CUSTOMER_ID": telesign_fake.CUSTOMER_ID,
            "API_KEY": telesign_fake.API_KEY,
            "BASE_URL": f"{url}/telesign",
        },
        "vonage": {
            "API_KEY": vonage_fake.API_KEY,
            "API_SECRET": vonage_fake.API_SECRET,
            "SIGNATURE_SECRET": vonage_fake.SIGNATURE_SECRET,
            "SIGNATURE_METHOD": "md5hash",
            "FROM": "AcmeOTP",
            "BASE_URL": f"{url}/vonage",
        },
    }


class ProviderFakes:
    """WSGI app routing each request to the fake of the service it addresses."""

    def __init__(self) -> None:
        self.twilio = CarrierTwilioFake()
        self.sns = SnsPublisher()
        self.aws_sms = CarrierAwsSmsFake(sns=self.sns)
        self.chime = CarrierChimeFake()
        #: The other providers' fakes, each under ``/<key>/`` (the path of its ``BASE_URL``).
        self.mounted: dict[str, Callable[..., Iterable[bytes]]] = {
            "alibaba": CarrierAlibabaFake(path_prefix="/alibaba"),
            "infobip": CarrierInfobipFake(base_path="/infobip"),
            "plivo": CarrierPlivoFake(),
            "sinch": CarrierSinchFake(),
            "telesign": CarrierTelesignFake(),
            "vonage": CarrierVonageFake(),
        }

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("HTTP_X_AMZ_TARGET"):
            return self.aws_sms(environ, start_response)
        if path.startswith(f"/{API_VERSION}/"):
            return self.twilio(environ, start_response)
        if path.startswith("/channels"):
            return self.chime(environ, start_response)
        if path.startswith(CERTIFICATE_PATH):
            return self.sns(environ, start_response)
        mounted = self.mounted.get(path.split("/", 2)[1])
        if mounted is not None:
            return mounted(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no fake serves this path\n"]
