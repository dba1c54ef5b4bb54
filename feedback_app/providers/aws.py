"""What the boto3-based backends (``aws_sms``, ``chime``) share: building a client from a provider's
settings, and turning botocore's exceptions into ``RetryableError`` / ``PermanentError``.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]``: ``REGION`` (else boto3's
``AWS_DEFAULT_REGION`` / profile), ``ENDPOINT_URL`` (a local fake or a VPC endpoint; unset: the real
service), ``ACCESS_KEY_ID`` / ``SECRET_ACCESS_KEY`` / ``SESSION_TOKEN`` (else boto3's usual
credential chain: environment, shared files, instance or task role), ``CONNECT_TIMEOUT``,
``READ_TIMEOUT`` and ``MAX_ATTEMPTS`` (attempts per call in botocore's "standard" retry mode, the
first included: 1 turns the SDK's own retries off).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    CapacityNotAvailableError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    MetadataRetrievalError,
    NoCredentialsError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .base import PermanentError, ProviderError, RetryableError

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: Seconds; botocore's defaults are 60 each. Short enough that a call with all its SDK retries
#: ends well inside the outbox's CLAIM_TIMEOUT (90 s), so no second worker takes the call over.
DEFAULT_CONNECT_TIMEOUT = 5
DEFAULT_READ_TIMEOUT = 10
#: Attempts per call, the first included ("standard" mode's default). The outbox retries again
#: later, so the SDK only needs to ride out a brief blip.
DEFAULT_MAX_ATTEMPTS = 3

#: Error codes worth trying again later: throttling and server-side failures, as named by the
#: services we use (SMS Voice v2: Throttling/InternalServer; Chime: ThrottledClient/
#: ServiceFailure/ServiceUnavailable) and by botocore's generic retry rules.
RETRYABLE_CODES: frozenset[str] = frozenset(
    {
        "ThrottlingException",
        "ThrottledClientException",
        "InternalServerException",
        "ServiceFailureException",
        "ServiceUnavailableException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


#: Request parameters that carry the message body (and so the code) or the clear number.
SECRET_PARAMETERS: frozenset[str] = frozenset({"MessageBody", "Content", "DestinationPhoneNumber"})
REDACTED = "***"

#: botocore's loggers that write request parameters at DEBUG ("Making request for ... with
#: params", event handlers); the filter also goes on every other botocore/boto3 logger.
_PARAMETER_LOGGERS = ("botocore.endpoint", "botocore.hooks", "botocore.client", "botocore.auth")


def _redact(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with the secret parameters' values replaced, at any depth.

    A serialized request body (bytes or str of JSON) is parsed, redacted and serialized again;
    a body that is not JSON is dropped whole, as it cannot be searched for them.
    """
    if depth > 20:
        return value
    if isinstance(value, Mapping):
        redacted = {}
        for key, item in value.items():
            if key in SECRET_PARAMETERS:
                redacted[key] = REDACTED
            elif key == "body" and isinstance(item, bytes | str) and item:
                redacted[key] = _redact_body(item)
            else:
                redacted[key] = _redact(item, depth + 1)
        return redacted
    if isinstance(value, list | tuple):
        return type(value)(_redact(item, depth + 1) for item in value)
    return value


def _redact_body(body: bytes | str) -> bytes | str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return REDACTED
    text = json.dumps(_redact(parsed))
    return text.encode() if isinstance(body, bytes) else text


#: The session token of temporary credentials (every instance or task role has one), as
#: botocore writes it in its request and canonical-request DEBUG lines.
_SESSION_TOKEN = re.compile(r"(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[A-Za-z0-9+/=]+", re.I)


class RedactParametersFilter(logging.Filter):
    """Keeps message bodies, clear numbers and session tokens out of botocore's DEBUG logs.

    botocore logs every request's parameters and serialized body at DEBUG. The filter replaces
    the record's arguments with redacted copies (the request itself is left untouched), and
    the session token wherever the formatted line shows a request's headers.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping):
            record.args = _redact(record.args)
        elif isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact(arg) for arg in record.args)
        message = record.getMessage()
        if _SESSION_TOKEN.search(message):
            record.msg, record.args = _SESSION_TOKEN.sub(rf"\g<1>{REDACTED}", message), ()
        return True


_redact_filter = RedactParametersFilter()


def install_log_redaction() -> None:
    """Put the filter on botocore's and boto3's loggers (idempotent).

    A logger's filters see only the records logged on it, not those of its children, so it
    goes on each logger that exists once a client is built (its modules are loaded by then).
    """
    names = set(_PARAMETER_LOGGERS)
    names.update(
        name
        for name in list(logging.root.manager.loggerDict)
        if name.split(".")[0] in {"botocore", "boto3"}
    )
    for name in names:
        logger = logging.getLogger(name)
        if _redact_filter not in logger.filters:
            logger.addFilter(_redact_filter)


def make_client(service_name: str, config: Mapping[str, Any]) -> BaseClient:
    """A boto3 client for ``service_name`` configured from a provider's settings.

    Build it once per backend instance (clients are thread-safe; creating them is not cheap).
    Credentials left out of the settings are found by boto3's default chain; none are logged.
    """
    # A session of our own: boto3's module-level default session is shared with the host
    # project and is not safe to create clients from in several threads at once.
    session = boto3.session.Session(
        aws_access_key_id=config.get("ACCESS_KEY_ID") or None,
        aws_secret_access_key=config.get("SECRET_ACCESS_KEY") or None,
        aws_session_token=config.get("SESSION_TOKEN") or None,
        region_name=config.get("REGION") or None,
    )
    client_config = Config(
        # total_max_attempts, not max_attempts: botocore prefers it, and it counts the first
        # attempt as AWS_MAX_ATTEMPTS and the config file's max_attempts do.
        retries={
            "mode": "standard",
            "total_max_attempts": int(config.get("MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)),
        },
        connect_timeout=config.get("CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
        read_timeout=config.get("READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
    )
    client = session.client(
        service_name, endpoint_url=config.get("ENDPOINT_URL") or None, config=client_config
    )
    install_log_redaction()
    return client


def error_from_client_error(
    exc: ClientError,
    retryable_codes: frozenset[str] = RETRYABLE_CODES,
    permanent_codes: frozenset[str] = frozenset(),
) -> ProviderError:
    """The provider error for an AWS error response, keeping AWS's error code and message.

    A code in neither set is decided by the HTTP status: 429 and 5xx are retryable, the rest
    (4xx: validation, auth, not found) permanent.
    """
    error = exc.response.get("Error", {})
    code = error.get("Code", "") or "ClientError"
    message = error.get("Message", "") or str(exc)
    if code in retryable_codes:
        return RetryableError(message, code=code)
    if code in permanent_codes:
        return PermanentError(message, code=code)
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    if status == 429 or status >= 500:
        return RetryableError(message, code=code)
    return PermanentError(message, code=code)


#: botocore errors that waiting may cure: the network, and getting credentials. The default
#: chain raises ``NoCredentialsError`` when the instance-metadata service timed out (it finds no
#: credentials), ``CredentialRetrievalError`` / ``MetadataRetrievalError`` when the container or
#: instance endpoint failed, ``TokenRetrievalError`` when the SSO token service did;
#: ``CapacityNotAvailableError`` is the SDK's own retry quota running out. A chain with nothing
#: configured also raises ``NoCredentialsError``: retried until the outbox gives up, and
#: ``manage.py check`` cannot see it either way.
TRANSIENT_ERRORS: tuple[type[BotoCoreError], ...] = (
    BotoConnectionError,
    HTTPClientError,
    NoCredentialsError,
    CredentialRetrievalError,
    MetadataRetrievalError,
    TokenRetrievalError,
    CapacityNotAvailableError,
)


def classify_error(
    exc: Exception,
    retryable_codes: frozenset[str] = RETRYABLE_CODES,
    permanent_codes: frozenset[str] = frozenset(),
) -> ProviderError:
    """The provider error for anything a botocore call raised.

    AWS error responses go through ``error_from_client_error``. Connection failures and
    timeouts (``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``,
    ``ConnectionClosedError``) are retryable, and so are failures to get credentials
    (``TRANSIENT_ERRORS``): an instance-metadata or container credential endpoint that is briefly
    unreachable must not fail a report for good. Other botocore errors
    (``ParamValidationError``, ``NoRegionError``, ``PartialCredentialsError``) are permanent: a
    bad request or configuration does not heal by waiting. Anything else is a bug, not a
    provider error, and is re-raised.
    """
    if isinstance(exc, ClientError):
        return error_from_client_error(exc, retryable_codes, permanent_codes)
    code = type(exc).__name__
    if isinstance(exc, TRANSIENT_ERRORS):
        return RetryableError(str(exc), code=code)
    if isinstance(exc, BotoCoreError):
        return PermanentError(str(exc), code=code)
    raise exc
