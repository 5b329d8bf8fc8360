"""The console's web server (aiohttp) in a thread of its own, beside the rclpy executor.

It serves the page, streams the live data as server-sent events and turns the page's commands
into calls of the console core; the node carries out what the core decides (``Backend``). No
rclpy here: the node hands frames and state over through the thread-safe ``publish_*`` methods.

Endpoints: ``GET /`` and ``/static/*`` (the page), ``GET /api/events`` (server-sent events:
``state`` and ``camera``), ``GET /api/state``, ``POST /api/command`` (JSON). Beyond localhost
each ``/api`` request must carry ``Authorization: Bearer <token>``; the page's own files hold no
data and load without it.
"""
from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from sidewalk_robot.operations.console import ConsoleCore, Outcome, Requester

STATIC_DIR = Path(__file__).resolve().parent / 'static'
STATIC_FILES = {'console.js': 'text/javascript', 'console.css': 'text/css'}
HEARTBEAT_S = 10.0
STARTUP_TIMEOUT_S = 10.0
SECURITY_HEADERS = {
    'Cache-Control': 'no-store',
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'",
}


class Backend(Protocol):
    """What the node provides: its clock and the execution of a command's effects."""

    def now(self) -> float: ...

    def execute(self, outcome: Outcome, requester: Requester, payload: dict[str, Any]
                ) -> Awaitable[dict[str, Any]]: ...

    def log(self, level: str, text: str) -> None: ...


@dataclass(eq=False)  # compared by identity: each is one open stream
class _Client:
    """One open event stream: the newest state and frame waiting to be sent (never a queue,
    so a slow browser gets the latest picture, not an old one)."""
    wake: asyncio.Event
    state: str | None = None
    camera: str | None = None


class ConsoleServer:
    def __init__(self, core: ConsoleCore, backend: Backend, host: str, port: int) -> None:
        self.core = core
        self.backend = backend
        self.host = host
        self.port = port
        self._clients: set[_Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    # --------------------------------------------------------------------------- lifecycle
    def start(self) -> int:
        """Listen (in a new thread); returns the port. Raises OSError if it cannot bind."""
        self._thread = threading.Thread(target=self._run, name='operator-console-web',
                                        daemon=True)
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            raise OSError(f'web server did not start within {STARTUP_TIMEOUT_S:.0f} s')
        if self._startup_error is not None:
            raise OSError(f'cannot listen on {self.host}:{self.port}: '
                          f'{self._startup_error}') from self._startup_error
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and self._stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop.set)
        if thread is not None:
            thread.join(timeout=10.0)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_get('/', self._page)
        app.router.add_get('/static/{name}', self._static)
        app.router.add_get('/favicon.ico', self._no_icon)
        app.router.add_get('/api/events', self._events)
        app.router.add_get('/api/state', self._state)
        app.router.add_post('/api/command', self._command)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
        except OSError as error:
            self._startup_error = error
            self._ready.set()
            await self._runner.cleanup()
            return
        self._ready.set()
        await self._stop.wait()
        for client in list(self._clients):
            client.wake.set()
        await self._runner.cleanup()

    # --------------------------------------------------------------------------- data out
    @property
    def client_count(self) -> int:
        return len(self._clients)

    def publish_state(self, state: dict[str, Any]) -> None:
        """Send the state to every open page (thread-safe; the newest replaces an unsent one)."""
        self._hand_over('state', json.dumps(state, default=str))

    def publish_camera(self, jpeg: bytes, stamp: float, width: int, height: int) -> None:
        """Send a JPEG frame with its header stamp (thread-safe)."""
        payload = json.dumps({'stamp': stamp, 'sent': time.time(), 'width': width,
                              'height': height,
                              'jpeg': base64.b64encode(jpeg).decode('ascii')})
        self._hand_over('camera', payload)

    def _hand_over(self, kind: str, data: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or not self._clients:
            return
        try:
            loop.call_soon_threadsafe(self._deliver, kind, data)
        except RuntimeError:
            pass  # the loop closed between the check and the call: the server is stopping

    def _deliver(self, kind: str, data: str) -> None:
        for client in self._clients:
            setattr(client, kind, data)
            client.wake.set()

    # --------------------------------------------------------------------------- handlers
    def _requester(self, request: web.Request) -> Requester:
        return Requester(remote=request.remote or '', host_header=request.headers.get('Host'),
                         origin=request.headers.get('Origin'),
                         authorization=request.headers.get('Authorization'))

    def _refused(self, request: web.Request, *, command: bool, what: str
                 ) -> web.Response | None:
        """None when allowed; else the 401/403 response, after logging the refusal."""
        requester = self._requester(request)
        refusal = self.core.authorize(requester, command=command)
        if refusal is None:
            return None
        self.core.refuse(requester, what, refusal, self.backend.now())
        self.backend.log('warning', f'refused {request.method} {request.path} from '
                                    f'{requester.remote}: {refusal.message}')
        headers = dict(SECURITY_HEADERS)
        if refusal.status == 401:
            headers['WWW-Authenticate'] = 'Bearer realm="operator console"'
        return web.json_response({'status': refusal.status, 'message': refusal.message},
                                 status=refusal.status, headers=headers)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self.core.config.needs_token:
            refused = self._refused(request, command=False, what='page')
            if refused is not None:
                return refused
        return web.FileResponse(STATIC_DIR / 'index.html', headers=SECURITY_HEADERS)

    @staticmethod
    async def _no_icon(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info['name']
        if name not in STATIC_FILES:
            raise web.HTTPNotFound()
        return web.FileResponse(STATIC_DIR / name,
                                headers={**SECURITY_HEADERS, 'Content-Type': STATIC_FILES[name]})

    async def _state(self, request: web.Request) -> web.Response:
        refused = self._refused(request, command=False, what='state')
        if refused is not None:
            return refused
        return web.json_response(self.core.snapshot(self.backend.now()), headers=SECURITY_HEADERS,
                                 dumps=lambda data: json.dumps(data, default=str))

    async def _events(self, request: web.Request) -> web.StreamResponse:
        refused = self._refused(request, command=False, what='events')
        if refused is not None:
            return refused
        response = web.StreamResponse(headers={**SECURITY_HEADERS,
                                               'Content-Type': 'text/event-stream',
                                               'X-Accel-Buffering': 'no'})
        await response.prepare(request)
        client = _Client(asyncio.Event(),
                         state=json.dumps(self.core.snapshot(self.backend.now()), default=str))
        client.wake.set()
        self._clients.add(client)
        try:
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    await response.write(b': heartbeat\n\n')
                    continue
                client.wake.clear()
                for kind in ('state', 'camera'):
                    data = getattr(client, kind)
                    if data is not None:
                        setattr(client, kind, None)
                        await response.write(f'event: {kind}\ndata: {data}\n\n'.encode())
        except ConnectionResetError:
            pass  # the page was closed
        finally:
            self._clients.discard(client)
        return response

    async def _command(self, request: web.Request) -> web.Response:
        refused = self._refused(request, command=True, what='command')
        if refused is not None:
            return refused
        requester = self._requester(request)
        payload = None
        if request.content_type == 'application/json':
            try:
                payload = await request.json()
            except ValueError:
                pass  # refused by the core as not a JSON object
        outcome = self.core.command(payload, requester, self.backend.now())
        if outcome.status != 200:
            self.backend.log('warning', f'command refused ({outcome.status}): {outcome.message}')
            return self._reply(outcome.status, outcome.message, outcome)
        result = {'status': 200, 'message': outcome.message,
                  **await self.backend.execute(outcome, requester, payload)}
        return web.json_response(result, status=result['status'], headers=SECURITY_HEADERS)

    @staticmethod
    def _reply(status: int, message: str, outcome: Outcome) -> web.Response:
        return web.json_response({'status': status, 'message': message,
                                  'record': outcome.record}, status=status,
                                 headers=SECURITY_HEADERS)

