"""Settings of bench/webhooks.py: the benchmarks' settings plus a Twilio and an AWS SMS provider
whose webhooks check signatures as in production (no ``DEBUG``, no development certificate URL).

Nothing is sent to either provider: the benchmark only receives their callbacks.
"""

from bench.settings import *  # noqa: F403
from bench.settings import FEEDBACK_APP

TWILIO_AUTH_TOKEN = "bench-twilio-auth-token"  # noqa: S105 - a benchmark's own secret
SNS_BASIC_AUTH = "sns:bench-webhook-password"
SNS_TOPIC_ARN = "arn:aws:sns:us-east-1:111122223333:bench-sms-events"
#: The URL Twilio is told to call: the signature covers it, whatever host serves the benchmark.
PUBLIC_URL = "https://webhooks.example.com"

FEEDBACK_APP = {
    **FEEDBACK_APP,
    "PUBLIC_URL": PUBLIC_URL,
    "PROVIDERS": {
        **FEEDBACK_APP["PROVIDERS"],
        "twilio": {"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": TWILIO_AUTH_TOKEN},
        "aws_sms": {
            "REGION": "us-east-1",
            "WEBHOOK_BASIC_AUTH": SNS_BASIC_AUTH,
            "SNS_TOPIC_ARNS": [SNS_TOPIC_ARN],
        },
    },
}
