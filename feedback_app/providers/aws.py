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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
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
    return session.client(
        service_name, endpoint_url=config.get("ENDPOINT_URL") or None, config=client_config
    )


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


def classify_error(
    exc: Exception,
    retryable_codes: frozenset[str] = RETRYABLE_CODES,
    permanent_codes: frozenset[str] = frozenset(),
) -> ProviderError:
    """The provider error for anything a botocore call raised.

    AWS error responses go through ``error_from_client_error``. Connection failures and
    timeouts (``EndpointConnectionError``, ``ConnectTimeoutError``, ``ReadTimeoutError``,
    ``ConnectionClosedError``) are retryable. Other botocore errors (``ParamValidationError``,
    ``NoCredentialsError``, ``NoRegionError``) are permanent: a bad request or configuration
    does not heal by waiting. Anything else is a bug, not a provider error, and is re-raised.
    """
    if isinstance(exc, ClientError):
        return error_from_client_error(exc, retryable_codes, permanent_codes)
    code = type(exc).__name__
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return RetryableError(str(exc), code=code)
    if isinstance(exc, BotoCoreError):
        return PermanentError(str(exc), code=code)
    raise exc
