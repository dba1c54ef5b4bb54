"""Local fakes of the providers' HTTP APIs, for this app's tests and for host projects' tests.

Each fake is a WSGI app reached by the real SDK (twilio ``Client.api.base_url``, boto3
``endpoint_url``); ``FakeServer`` serves one on a free local port.
"""

from .server import FakeServer

__all__ = ["FakeServer"]
