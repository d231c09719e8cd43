"""Helpers of the ``actorflow web`` tests: a real server on 127.0.0.1 in this process."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runtime._cli._web_graph import GraphRenderer
from runtime._cli._web_server import Controller, WebConfig, WebServer


@contextmanager
def serving(
    db: Path | str,
    workflows: Mapping[str, Any] | None = None,
    *,
    app: str | None = None,
    controller: Controller | None = None,
    dot: str | None = None,
) -> Iterator[WebServer]:
    """A server on a free loopback port, serving until the block ends."""
    graphs = GraphRenderer(workflows or {}, app, dot)
    server = WebServer(("127.0.0.1", 0), WebConfig(db, graphs, controller))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str, timeout: float = 10) -> tuple[int, str, dict[str, str]]:
    """Status, body and headers; an HTTP error status is returned, not raised."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def get_json(url: str) -> Any:
    status, body, _ = get(url)
    assert status == 200, body
    return json.loads(body)


def post(url: str, form: dict[str, str]) -> tuple[int, str, dict[str, str]]:
    """POST a form without following the redirect: status, body and headers."""
    data = "&".join(f"{k}={urllib.request.quote(v)}" for k, v in form.items()).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with _NO_REDIRECT.open(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# No proxy, whatever the environment says: every request of these tests stays on loopback.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_NO_REDIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
