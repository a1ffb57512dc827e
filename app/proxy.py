"""Several server processes behind one port, each browser kept on one of them.

``sgd-atlas serve --procs N`` (N > 1) runs N ``panel serve`` processes on loopback ports and
this proxy on the public address. Bokeh keeps a session in the process that built it, so a
page's HTML request and its websocket must reach the same process — with Tornado's
``--num-procs`` they did not (the kernel hands each connection to any process: with real
browsers a page was built 1.67 times on average, and a class-mode run, held by one process,
was "no longer on the server" for every other request). The proxy pins each browser to one
process with a cookie (:data:`COOKIE`), set on its first response: its pages, their
websockets, the class mode's API calls and its exports all go to that process. Browsers
without the cookie are spread round-robin. This is the sticky-session load balancing the
Panel and Bokeh deployment guides ask of a reverse proxy (panel.holoviz.org/how_to/
concurrency/load_balancing, docs.bokeh.org/en/latest/docs/user_guide/server/deploy.html).

The results cache is shared through its disk folder (``SGD_ATLAS_CACHE_DIR``). ``GET
/atlas-proxy`` answers what the proxy routed (per process: requests, Panel pages, class pages,
websockets) — for tests and for an operator checking the spread.
"""

from __future__ import annotations

import itertools
import json
import logging
import re

from tornado import httputil, web, websocket
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger(__name__)
COOKIE = "sgd_atlas_proc"
#: Bokeh's own limit for a websocket message (``--websocket-max-message-size``)
MAX_MESSAGE = 20 * 2**20
#: headers of one hop, not forwarded (RFC 9110 §7.6.1), and those Tornado sets itself
HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
       "transfer-encoding", "upgrade", "content-length", "host"}
WS_HANDSHAKE = {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
                "sec-websocket-protocol"}


class Backends:
    """The server processes' loopback ports, the choice of one per browser, and counts."""

    def __init__(self, ports: list[int]):
        self.ports = list(ports)
        self._turn = itertools.cycle(range(len(self.ports)))
        #: per process: requests, Panel pages (``/app``), class pages, websockets
        self.counts = [{"requests": 0, "pages": 0, "class_pages": 0, "websockets": 0}
                       for _ in self.ports]

    def pick(self, request: httputil.HTTPServerRequest) -> tuple[int, bool]:
        """``(process index, whether the browser is new to the proxy)``: the cookie's process,
        or the next one in turn."""
        raw = request.cookies.get(COOKIE)
        value = raw.value if raw is not None else ""
        if re.fullmatch(r"\d{1,3}", value) and int(value) < len(self.ports):
            return int(value), False
        return next(self._turn), True


def _forwarded(request: httputil.HTTPServerRequest, skip=frozenset()) -> httputil.HTTPHeaders:
    headers = httputil.HTTPHeaders()
    for name, value in request.headers.get_all():
        if name.lower() not in HOP and name.lower() not in skip:
            headers.add(name, value)
    headers["Host"] = request.host  # the backend builds its redirects and links from it
    headers["X-Forwarded-For"] = request.remote_ip
    headers["X-Forwarded-Proto"] = request.protocol
    return headers


class HTTPProxy(web.RequestHandler):
    """Any HTTP request, passed to the browser's process and its answer passed back."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "OPTIONS")

    def initialize(self, backends: Backends):
        self.backends = backends

    async def _proxy(self, *args) -> None:
        k, new = self.backends.pick(self.request)
        counts = self.backends.counts[k]
        counts["requests"] += 1
        path = self.request.path.rstrip("/")
        if path.endswith("/app"):
            counts["pages"] += 1
        elif path.endswith("/class"):
            counts["class_pages"] += 1
        body = self.request.body if self.request.method == "POST" else None
        request = HTTPRequest(
            f"http://127.0.0.1:{self.backends.ports[k]}{self.request.uri}",
            method=self.request.method, headers=_forwarded(self.request), body=body,
            follow_redirects=False, decompress_response=False, connect_timeout=10,
            request_timeout=600, allow_nonstandard_methods=True)
        try:
            answer = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # the process is gone or not listening yet
            log.warning("server process %d did not answer: %s", k, exc)
            answer = None
        if answer is None or answer.code == 599:
            self.set_status(502)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("This server process is not answering; reload the page in a moment.")
            return
        self.set_status(answer.code, answer.reason)
        self._headers = httputil.HTTPHeaders()  # the backend's, not Tornado's defaults
        for name, value in answer.headers.get_all():
            if name.lower() not in HOP:
                self.add_header(name, value)
        if new:
            self.set_cookie(COOKIE, str(k), path="/", httponly=True, samesite="Lax")
        if answer.body and self.request.method != "HEAD" and answer.code not in (204, 304):
            self.write(answer.body)
        self.finish()

    get = head = post = options = _proxy

    def compute_etag(self):  # the backend's ETag, if any, is passed on as is
        return None


class WebSocketProxy(websocket.WebSocketHandler):
    """A Bokeh websocket, joined to the same path of the browser's process."""

    def initialize(self, backends: Backends):
        self.backends = backends
        self.upstream = None
        self._opened = False
        self._early: list = []  # messages of the process that came before the browser's side
        # was open (Bokeh's ACK is sent at once)

    def check_origin(self, origin: str) -> bool:
        return True  # the Origin header is passed on: the process checks it against its list

    async def get(self, *args, **kwargs):
        k, _ = self.backends.pick(self.request)
        self.backends.counts[k]["websockets"] += 1
        protocols = [p.strip() for p in
                     self.request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        request = HTTPRequest(f"ws://127.0.0.1:{self.backends.ports[k]}{self.request.uri}",
                              headers=_forwarded(self.request, WS_HANDSHAKE), connect_timeout=10,
                              request_timeout=60)
        try:
            self.upstream = await websocket.websocket_connect(
                request, on_message_callback=self._from_upstream, subprotocols=protocols or None,
                max_message_size=MAX_MESSAGE)
        except Exception as exc:  # refused (a bad origin or token: its status) or unreachable
            code = getattr(exc, "code", 502)
            self.set_status(code if isinstance(code, int) and 400 <= code < 600 else 502)
            self.finish()
            return
        await super().get(*args, **kwargs)

    def select_subprotocol(self, subprotocols):
        return self.upstream.selected_subprotocol if self.upstream is not None else None

    def open(self, *args, **kwargs):
        self._opened = True
        for message in self._early:
            self._send(message)
        self._early.clear()

    def _send(self, message) -> None:
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except websocket.WebSocketClosedError:
            pass

    def _from_upstream(self, message) -> None:
        if message is None:  # the process closed it
            self.close()
        elif self._opened:
            self._send(message)
        else:
            self._early.append(message)

    async def on_message(self, message):
        if self.upstream is not None:
            try:
                await self.upstream.write_message(message, binary=isinstance(message, bytes))
            except websocket.WebSocketClosedError:
                self.close()

    def on_close(self):
        if self.upstream is not None:
            self.upstream.close()


class Stats(web.RequestHandler):
    def initialize(self, backends: Backends):
        self.backends = backends

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"processes": [dict(port=p, **c) for p, c in
                                              zip(self.backends.ports, self.backends.counts)]}))


def application(backends: Backends) -> web.Application:
    args = {"backends": backends}
    AsyncHTTPClient.configure(None, max_clients=256)  # a class arrives at once
    return web.Application([
        (r"/atlas-proxy", Stats, args),
        (r"/(?:.*/)?ws", WebSocketProxy, args),
        (r"/.*", HTTPProxy, args),
    ], websocket_max_message_size=MAX_MESSAGE)
