"""The HTTP side of ``actorflow web``: a stdlib ``ThreadingHTTPServer`` and its routes.

    GET  /                    the run list          GET /api/runs        its JSON twin
    GET  /runs/RUN_ID         one run's page        GET /api/runs/RUN_ID its JSON twin
    POST /runs/RUN_ID/control pause / unpause / cancel (only with a controller)

Each request opens the SQLite file, reads, and closes it: the runs' own
processes write it meanwhile. A JSON twin holds the data (as ``runs --json``
and ``show --json`` print it) and ``parts``, the page's live fragments as HTML.

Defences, since a browser on this machine also visits other sites: a Host
header naming another site is refused (DNS rebinding; unless the server was
started with ``allow_remote``), a POST needs the per-process token its form
carries (cross-site requests), and a Content-Security-Policy allows only our
own inline script (by nonce), our own JSON, inline styles and nothing else.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from actors import PersistenceError
from runtime._cli import _web_html as web_html
from runtime._cli._common import db_name, open_store
from runtime._cli._web_graph import GraphRenderer
from runtime._cli.runs import run_json
from runtime._cli.show import checkpoint_json
from runtime.store import Checkpoint, PostgresStore, RunSummary, SQLiteStore

__all__ = ["Controller", "WebConfig", "WebServer"]

log = logging.getLogger(__name__)

# (run_id, action) -> what happened, in words; raises for a failure to reach the cluster.
Controller = Callable[[str, str], str]

_MAX_FORM_BYTES = 4096
_NOTICES = 100


@dataclass(frozen=True)
class WebConfig:
    db: Path | str  # a SQLite file or a postgresql:// URL
    graphs: GraphRenderer
    controller: Controller | None = None  # None: read-only
    allow_remote: bool = False


class WebServer(ThreadingHTTPServer):
    """Serves ``config``'s database on ``address`` until ``shutdown()``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], config: WebConfig) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # read by the base's __init__
        super().__init__(address, _Handler)
        self.config = config
        self.token = secrets.token_urlsafe(24) if config.controller else None
        self._notices: OrderedDict[str, str] = OrderedDict()  # what a button did, by id
        self._notices_lock = threading.Lock()
        host, port = self.server_address[:2]
        self.url = f"http://{_url_host(str(host))}:{port}/"
        self.allowed_hosts = {
            f"{name}:{port}" for name in (_url_host(str(host)), "localhost", "127.0.0.1", "[::1]")
        }
        # PostgreSQL: one store (one pool of connections) for every request, not one
        # per request (a connection, and the schema check, per page). A SQLite file is
        # opened per request: cheap, and no connection is shared between threads.
        self._shared: PostgresStore | None = None
        if isinstance(config.db, str):
            self._shared = PostgresStore(config.db)

    @contextmanager
    def store(self) -> Iterator[SQLiteStore | PostgresStore]:
        """The store, for one request."""
        if self._shared is not None:
            yield self._shared
            return
        with open_store(self.config.db) as store:
            yield store

    def server_close(self) -> None:
        super().server_close()
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.close()

    def keep_notice(self, text: str) -> str:
        """Keep ``text`` for the page the POST redirects to; its id goes in the URL (not
        the text itself, so a crafted link cannot make the page say anything)."""
        notice_id = secrets.token_urlsafe(9)
        with self._notices_lock:
            self._notices[notice_id] = text
            while len(self._notices) > _NOTICES:
                self._notices.popitem(last=False)
        return notice_id

    def notice(self, notice_id: str | None) -> str | None:
        with self._notices_lock:
            return self._notices.get(notice_id or "")


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Handler(BaseHTTPRequestHandler):
    server: WebServer
    server_version = "actorflow-web"
    sys_version = ""
    _csp = "default-src 'none'"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # -- routing ---------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        try:
            if path == "/":
                self._runs_page()
            elif path == "/api/runs":
                self._runs_json()
            elif path.startswith("/runs/") and path.count("/") == 2:
                notice = self.server.notice(query.get("notice", [None])[0])
                self._run_page(unquote(path[len("/runs/") :]), notice)
            elif path.startswith("/api/runs/") and path.count("/") == 3:
                self._run_json(unquote(path[len("/api/runs/") :]))
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no page at {path}")
        except PersistenceError as exc:
            self._error(HTTPStatus.NOT_FOUND, str(exc))

    def do_POST(self) -> None:
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if not (path.startswith("/runs/") and path.endswith("/control") and path.count("/") == 3):
            self._error(HTTPStatus.NOT_FOUND, f"no action at {path}")
            return
        run_id = unquote(path[len("/runs/") : -len("/control")])
        controller, token = self.server.config.controller, self.server.token
        if controller is None or token is None:
            self._error(
                HTTPStatus.FORBIDDEN,
                "read-only: this server was started without --allow-control",
            )
            return
        form = self._form()
        given = form.get("token", [""])[0]
        action = form.get("action", [""])[0]
        if not hmac.compare_digest(given.encode(), token.encode()):
            self._error(HTTPStatus.FORBIDDEN, "missing or stale form token: reload the page")
            return
        if action not in web_html.ACTIONS:
            self._error(HTTPStatus.BAD_REQUEST, f"unknown action {action!r}")
            return
        try:
            said = controller(run_id, action)
        except Exception as exc:  # noqa: BLE001 - the cluster's answer, shown to the person
            said = f"{action} failed: {type(exc).__name__}: {exc}"
        self.send_response(HTTPStatus.SEE_OTHER)
        notice_id = self.server.keep_notice(said)
        self.send_header("Location", f"{web_html.run_href(run_id)}?notice={notice_id}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    # -- pages -----------------------------------------------------------------------------

    def _runs_page(self) -> None:
        fragments = web_html.runs_fragments(self._summaries(), time.time())
        body = web_html.runs_body(db_name(self.server.config.db), fragments)
        self._html(web_html.page("actorflow runs", body, api="/api/runs", nonce=self._nonce()))

    def _runs_json(self) -> None:
        summaries = self._summaries()
        parts = web_html.runs_fragments(summaries, time.time())
        runs = [run_json(s) for s in sorted(summaries, key=lambda s: s.updated_at, reverse=True)]
        self._json({"runs": runs, "parts": parts})

    def _run_page(self, run_id: str, notice: str | None) -> None:
        checkpoint = self._load(run_id)
        fragments = self._run_fragments(checkpoint)
        controls = web_html.control_form(checkpoint.run_id, self.server.token)
        body = web_html.run_body(checkpoint, fragments, controls=controls, notice=notice)
        api = "/api" + web_html.run_href(run_id)
        title = f"run {run_id} - actorflow"
        self._html(web_html.page(title, body, api=api, nonce=self._nonce()))

    def _run_json(self, run_id: str) -> None:
        checkpoint = self._load(run_id)
        document = checkpoint_json(checkpoint)
        document["parts"] = self._run_fragments(checkpoint)
        self._json(document)

    def _run_fragments(self, checkpoint: Checkpoint) -> dict[str, str]:
        graph = self.server.config.graphs.section(checkpoint)
        return web_html.run_fragments(checkpoint, graph, time.time())

    # -- the store -------------------------------------------------------------------------

    def _summaries(self) -> list[RunSummary]:
        with self.server.store() as store:
            return store.list()

    def _load(self, run_id: str) -> Checkpoint:
        with self.server.store() as store:
            return store.load(run_id)

    # -- responses -------------------------------------------------------------------------

    def _host_ok(self) -> bool:
        """Refuse a Host naming another site (a rebound DNS name reaching this port)."""
        if self.server.config.allow_remote:
            return True
        host = (self.headers.get("Host") or "").lower()
        if host in self.server.allowed_hosts:
            return True
        self._error(HTTPStatus.BAD_REQUEST, f"unexpected Host header {host!r}")
        return False

    def _form(self) -> dict[str, list[str]]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(min(max(length, 0), _MAX_FORM_BYTES))
        return parse_qs(raw.decode("utf-8", "replace"))

    def _nonce(self) -> str:
        nonce = secrets.token_urlsafe(16)
        self._csp = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; connect-src 'self'; "
            "style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        )
        return nonce

    def _html(self, text: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, "text/html; charset=utf-8", text.encode())

    def _json(self, document: Any) -> None:
        body = json.dumps(document, allow_nan=False, default=repr).encode()
        self._send(HTTPStatus.OK, "application/json", body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._html(web_html.error_page(status.value, message, self._nonce()), status)

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", self._csp)
        self.end_headers()
        self.wfile.write(body)
