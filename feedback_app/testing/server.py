"""Serve a WSGI app on 127.0.0.1 in a background thread, for tests and the demo."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


def read_body(environ: dict[str, Any]) -> bytes:
    """The request's body, as many bytes as its Content-Length says."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """The request's headers by lower-case name, Content-Type included; Authorization left out
    (a fake checks credentials, it never records them)."""
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and key != "HTTP_AUTHORIZATION"
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def reason(status: int) -> str:
    """The reason phrase of an HTTP status, "Error" for a code HTTP does not define."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_response(
    start_response: Callable[..., Any],
    status: int,
    payload: Any,
    headers: Iterable[tuple[str, str]] = (),
    content_type: str = "application/json",
) -> list[bytes]:
    """A fake's JSON answer (no body for ``payload`` None), with its length and reason."""
    data = b"" if payload is None else json.dumps(payload).encode()
    head = [("Content-Length", str(len(data)))]
    if payload is not None:
        head.insert(0, ("Content-Type", content_type))
    start_response(f"{status} {reason(status)}", [*head, *headers])
    return [data]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class FakeServer:
    """``with FakeServer(app) as server: client(base_url=server.url)``; port 0 picks a free one."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self._server = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (a command's foreground server)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
