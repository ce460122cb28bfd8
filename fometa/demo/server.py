"""The demo's web server: the standard library's :class:`~http.server.ThreadingHTTPServer`, one page
and a JSON API.

======================  ===========================================================================
``GET /``               the page (``index.html``, with ``demo.js`` and ``demo.css``)
``GET /api/info``       :meth:`Demo.info`: the model's name, how many classes, the steps shown
``POST /api/preview``   :meth:`Demo.preview`: one image as the network sees it
``POST /api/adapt``     :meth:`Demo.adapt`: fine-tune on the classes' images, classify the query
======================  ===========================================================================

Errors are JSON ``{"error": "one line"}`` with a 4xx status (5xx for a fault of the server's own,
printed to stderr with its traceback); the server answers the next request as before. A request
body over :data:`MAX_BODY_BYTES` is refused before it is read.
"""
from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from fometa.demo.app import Demo, DemoError

__all__ = ["make_server", "MAX_BODY_BYTES"]

#: one request (its images base64-encoded): room for a full page of drawings, or a dozen large photos
MAX_BODY_BYTES = 64 * 1024 * 1024
#: bodies up to this size are read and dropped after a refusal, so the browser sees the answer
#: instead of a reset connection; larger ones are not read at all
_DRAIN_BYTES = 4 * MAX_BODY_BYTES

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/index.html": ("index.html", "text/html; charset=utf-8"),
           "/demo.js": ("demo.js", "text/javascript; charset=utf-8"),
           "/demo.css": ("demo.css", "text/css; charset=utf-8")}


class DemoServer(ThreadingHTTPServer):
    """The page's server: ``demo`` answers its requests; ``quiet``: no line per request on stderr."""

    daemon_threads = True

    def __init__(self, address, demo: Demo, quiet: bool = True):
        super().__init__(address, _Handler)
        self.demo, self.quiet = demo, quiet


def make_server(demo: Demo, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> DemoServer:
    """A server (not yet serving) for ``demo`` on ``host:port`` (port 0: any free port; the chosen
    one is ``server.server_address[1]``). ``quiet``: no line per request on stderr."""
    return DemoServer((host, port), demo, quiet)


def address(server) -> str:
    """The page's address, ``http://HOST:PORT/`` (IPv6 hosts in brackets)."""
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "fometa-demo"
    protocol_version = "HTTP/1.1"

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/api/info":
            return self._json(HTTPStatus.OK, self.server.demo.info())
        if path in _STATIC:
            name, kind = _STATIC[path]
            body = resources.files("fometa.demo").joinpath(name).read_bytes()
            return self._send(HTTPStatus.OK, body, kind)
        return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {path}"})

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        routes = {"/api/preview": self.server.demo.preview, "/api/adapt": self.server.demo.adapt}
        try:
            payload = self._read_json()
            if path not in routes:
                raise DemoError(f"no such endpoint: POST {path}", status=HTTPStatus.NOT_FOUND)
            answer = routes[path](payload)
        except DemoError as exc:
            return self._json(exc.status, {"error": str(exc)})
        except Exception as exc:  # a fault of ours: say so on the page, keep serving, keep the traceback
            traceback.print_exc(file=sys.stderr)
            return self._json(HTTPStatus.INTERNAL_SERVER_ERROR,
                              {"error": f"internal error ({type(exc).__name__}: {exc}); see the server's output"})
        return self._json(HTTPStatus.OK, answer)

    # -- plumbing --------------------------------------------------------------------------
    def _read_json(self):
        # a JSON content type cannot be sent across sites without the browser asking first (CORS), and
        # this server never says yes: another site's page cannot make the local model work
        if self.headers.get_content_type() != "application/json":
            self.close_connection = True
            raise DemoError("send the request as application/json", status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE)
        given = self.headers.get("Content-Length")
        if given is None or not given.isdigit():
            self.close_connection = True
            raise DemoError("the request has no Content-Length", status=HTTPStatus.LENGTH_REQUIRED)
        length = int(given)
        if length > MAX_BODY_BYTES:
            if length <= _DRAIN_BYTES:
                self._drain(length)
            else:
                self.close_connection = True
            raise DemoError(f"the request is too large: {length / 2**20:.1f} MiB; at most "
                            f"{MAX_BODY_BYTES / 2**20:.0f} MiB", status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        body = self.rfile.read(length)
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DemoError(f"the request is not JSON: {exc}") from None

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 20))
            if not chunk:
                break
            length -= len(chunk)

    def _json(self, status, obj) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _send(self, status, body: bytes, kind: str) -> None:
        self.send_response(int(status))
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        if not self.server.quiet:
            super().log_message(format, *args)
