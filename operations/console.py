"""The operator console's decisions, without ROS or HTTP: who may do what, what each command
publishes, what the page shows, and the audit trail.

The node (operator_node.py) feeds it the robot's topics and the web server's requests, and
carries out the effects it returns. Everything an operator does, accepted or refused, becomes
one audit record: time, who, from where, what, why, and the outcome.
"""
from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sidewalk_robot.operations.config import LOCALHOST_NAMES, OperatorConfig
from sidewalk_robot.operations.security import bearer_token, token_matches

ACTIONS = ('estop', 'release_estop', 'reset', 'assist_response', 'manual_mode', 'manual_cmd')
DECISIONS = ('approve', 'decline')
OPEN_STATUS = 'requested'
MAX_TEXT = 500
"""Longest operator name or note kept (a page cannot flood the audit log)."""
KNOWN_REQUESTS = 20
MANUAL_LOG_RESOLUTION = 0.01
"""Manual commands are logged when they change by more than this (m/s, rad/s): a held key
repeats its command several times a second, the audit log needs each change once."""


class CommandError(Exception):
    """A command refused with an HTTP status and a sentence for the operator."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Effect:
    """Something the node must do: publish on an operator topic or call the reset service."""
    kind: str
    """'estop', 'assist_response', 'manual_mode', 'manual_cmd' or 'reset'."""
    value: Any = None


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str
    effects: tuple[Effect, ...] = ()
    record: dict[str, Any] | None = None
    """The audit record (None: not logged, a repeated manual command)."""


@dataclass(frozen=True)
class Requester:
    """Who sent an HTTP request, as the web server saw it."""
    remote: str
    host_header: str | None = None
    origin: str | None = None
    authorization: str | None = None


@dataclass
class AssistView:
    request: dict[str, Any]
    received: float


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec='milliseconds')


class AuditLog:
    """Appends JSON lines to a private file and keeps the latest records for the page."""

    def __init__(self, path: str | Path, keep: int,
                 listener: Callable[[str], None] | None = None) -> None:
        self.path = Path(path).expanduser()
        self._listener = listener
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._stream = os.fdopen(descriptor, 'a', encoding='utf-8')
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def append(self, record: Mapping[str, Any]) -> str:
        line = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            self._stream.write(line + '\n')
            self._stream.flush()  # an audit trail that dies with the process is no trail
            self.recent.append(dict(record))
        if self._listener is not None:
            self._listener(line)
        return line

    def close(self) -> None:
        with self._lock:
            if not self._stream.closed:
                self._stream.close()


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key, '')
    if value is None:
        return ''
    if not isinstance(value, str):
        raise CommandError(400, f'{key!r} must be text')
    return value.strip()[:MAX_TEXT]


def _number(payload: Mapping[str, Any], key: str) -> float:
    value = payload.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandError(400, f'{key!r} must be a finite number')
    return float(value)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _host_of(authority: str) -> tuple[str, int | None]:
    """'host:port' or '[v6]:port' of a Host header -> (host, port)."""
    parsed = urlsplit(f'//{authority}')
    try:
        return (parsed.hostname or ''), parsed.port
    except ValueError:
        return '', None


class ConsoleCore:
    """State shown on the page and the rules for every operator command. Thread-safe: the
    ROS executor and the web server's thread both call in."""

    def __init__(self, config: OperatorConfig, audit: AuditLog,
                 token_digest: str | None = None) -> None:
        if config.needs_token and not token_digest:
            raise ValueError(f'the console binds {config.host}, beyond localhost: it needs an '
                             f'operator token')
        self.config = config
        self.audit = audit
        self._token_digest = token_digest
        self._lock = threading.RLock()
        self.port = config.port
        self.safety: dict[str, Any] = {}
        self.health: dict[str, Any] = {}
        self.requests: OrderedDict[str, AssistView] = OrderedDict()
        self.request_problem = ''
        self.trail: deque[tuple[float, float, float]] = deque(maxlen=config.trail_length)
        self.route: list[tuple[float, float]] = []
        self.path: list[tuple[float, float]] = []
        self.frame_id = ''
        self.estop_pressed = False
        self.manual_mode = False
        self._last_manual: tuple[float, float] | None = None
        self.last_reset: dict[str, Any] | None = None

    # --------------------------------------------------------------------------- robot state
    def on_safety_state(self, level: str, message: str, values: Mapping[str, str]) -> None:
        with self._lock:
            self.safety = {'level': level, 'message': message, **values}

    def on_model_health(self, level: str, name: str, message: str,
                        values: Mapping[str, str]) -> None:
        with self._lock:
            self.health = {'level': level, 'name': name, 'message': message,
                           'values': dict(values)}

    def on_assist_request(self, data: str, now: float) -> dict[str, Any] | None:
        """A message of operator/assist_request; returns the parsed request (None if bad)."""
        try:
            request = json.loads(data)
            if not isinstance(request, dict):
                raise ValueError('not a JSON object')
        except ValueError as error:
            with self._lock:
                self.request_problem = f'unreadable assist request: {error}'
            return None
        identifier = str(request.get('id') or f'unnamed-{request.get("time", now)}')
        with self._lock:
            self.request_problem = ''
            self.requests.pop(identifier, None)
            self.requests[identifier] = AssistView(request, now)
            while len(self.requests) > KNOWN_REQUESTS:
                self.requests.popitem(last=False)
        return request

    def open_request(self, now: float) -> dict[str, Any] | None:
        """The newest request still waiting for an answer (not answered, closed or expired)."""
        with self._lock:
            for view in reversed(self.requests.values()):
                request = view.request
                if request.get('status', OPEN_STATUS) != OPEN_STATUS:
                    continue
                expires = request.get('expires_at')
                if isinstance(expires, (int, float)) and now >= expires:
                    continue
                return request
        return None

    def on_odometry(self, frame_id: str, x: float, y: float, yaw: float) -> None:
        with self._lock:
            self.frame_id = frame_id
            if not self.trail or math.hypot(x - self.trail[-1][0], y - self.trail[-1][1]) > 0.05:
                self.trail.append((x, y, yaw))
            else:
                self.trail[-1] = (self.trail[-1][0], self.trail[-1][1], yaw)

    def on_route(self, points: list[tuple[float, float]]) -> None:
        with self._lock:
            self.route = points

    def on_path(self, points: list[tuple[float, float]]) -> None:
        with self._lock:
            self.path = points

    def snapshot(self, now: float) -> dict[str, Any]:
        """Everything the page shows except the camera, as JSON-ready data."""
        with self._lock:
            return {
                'time': now,
                'safety': dict(self.safety),
                'health': dict(self.health),
                'request': self.open_request(now),
                'requests': [view.request for view in reversed(self.requests.values())],
                'request_problem': self.request_problem,
                'pose': list(self.trail[-1]) if self.trail else None,
                'trail': [[x, y] for x, y, _ in self.trail],
                'route': [list(p) for p in self.route],
                'path': [list(p) for p in self.path],
                'frame_id': self.frame_id,
                'estop_pressed': self.estop_pressed,
                'manual_mode': self.manual_mode,
                'last_reset': self.last_reset,
                'actions': list(self.audit.recent),
                'limits': {'linear': self.config.max_manual_linear,
                           'reverse': self.config.max_manual_reverse,
                           'angular': self.config.max_manual_angular},
                'token_required': self.config.needs_token,
            }

    # --------------------------------------------------------------------------- permissions
    def authorize(self, requester: Requester, *, command: bool) -> CommandError | None:
        """None when the request may proceed, else the refusal (401/403).

        Beyond localhost every request needs the token. On localhost a web page from another
        site must not drive the robot through the operator's browser: commands are refused
        when the Host header is not this console (DNS rebinding) or the Origin is another
        site (cross-site requests).
        """
        if self.config.needs_token:
            presented = bearer_token(requester.authorization)
            if presented is None:
                return CommandError(401, 'operator token required')
            if not token_matches(presented, self._token_digest or ''):
                return CommandError(403, 'wrong operator token')
        else:
            host, port = _host_of(requester.host_header or '')
            if host not in LOCALHOST_NAMES or (port is not None and port != self.port):
                return CommandError(403, f'unexpected Host header {requester.host_header!r}')
        if command and requester.origin:
            if requester.origin == 'null' or urlsplit(requester.origin).netloc != (
                    requester.host_header or ''):
                return CommandError(403, f'cross-site request from {requester.origin!r}')
        return None

    def refuse(self, requester: Requester, what: str, refusal: CommandError,
               now: float) -> dict[str, Any]:
        """Log a refused request (bad token, foreign origin) and return its audit record."""
        record = self._record(requester, now, action=what, who='', why='',
                              params={}, status=refusal.status, message=refusal.message)
        self.audit.append(record)
        return record

    # --------------------------------------------------------------------------- commands
    def command(self, payload: Any, requester: Requester, now: float) -> Outcome:
        """Decide an authorised command: its effects and its audit record."""
        if not isinstance(payload, dict):
            return self._refused(requester, now, 'unknown', {}, CommandError(
                400, 'a command is a JSON object (Content-Type: application/json)'))
        action = payload.get('action')
        try:
            if action not in ACTIONS:
                raise CommandError(400, f'unknown action {action!r} (one of {", ".join(ACTIONS)})')
            who, why = _text(payload, 'operator'), _text(payload, 'note')
            with self._lock:
                return getattr(self, f'_{action}')(payload, requester, now, who, why)
        except CommandError as error:
            return self._refused(requester, now, str(action), payload, error)

    def _estop(self, _payload, requester, now, who, why) -> Outcome:
        # Never refused for a missing name or reason: stopping comes first, questions later.
        self.estop_pressed = True
        return self._accepted(requester, now, 'estop', who or 'unknown', why or 'e-stop pressed',
                              {}, 'e-stop pressed', (Effect('estop', True),))

    def _release_estop(self, _payload, requester, now, who, why) -> Outcome:
        self._require_operator(who)
        self.estop_pressed = False
        return self._accepted(requester, now, 'release_estop', who, why, {},
                              'e-stop released; reset the safety monitor to drive again',
                              (Effect('estop', False),))

    def _reset(self, _payload, requester, now, who, why) -> Outcome:
        self._require_operator(who)
        return self._accepted(requester, now, 'reset', who, why, {}, 'reset requested',
                              (Effect('reset'),))

    def _assist_response(self, payload, requester, now, who, why) -> Outcome:
        self._require_operator(who)
        identifier, decision = payload.get('id'), payload.get('decision')
        if decision not in DECISIONS:
            raise CommandError(400, f'decision must be approve or decline, not {decision!r}')
        open_request = self.open_request(now)
        if not isinstance(identifier, str) or open_request is None or open_request.get(
                'id') != identifier:
            raise CommandError(409, f'no open assistance request with id {identifier!r} (it '
                                    f'was answered, closed or has expired)')
        answer = {'id': identifier, 'decision': decision, 'operator': who, 'note': why}
        return self._accepted(requester, now, 'assist_response', who, why,
                              {'id': identifier, 'decision': decision,
                               'kind': open_request.get('kind')},
                              f'{decision} sent for request {identifier}',
                              (Effect('assist_response', answer),))

    def _manual_mode(self, payload, requester, now, who, why) -> Outcome:
        self._require_operator(who)
        enabled = payload.get('enabled')
        if not isinstance(enabled, bool):
            raise CommandError(400, "'enabled' must be true or false")
        self.manual_mode = enabled
        self._last_manual = None
        effects = ((Effect('manual_mode', True),) if enabled else
                   (Effect('manual_cmd', (0.0, 0.0)), Effect('manual_mode', False)))
        return self._accepted(requester, now, 'manual_mode', who, why, {'enabled': enabled},
                              'manual driving on' if enabled else 'manual driving off', effects)

    def _manual_cmd(self, payload, requester, now, who, why) -> Outcome:
        self._require_operator(who)
        if not self.manual_mode:
            raise CommandError(409, 'manual driving is off: switch it on first')
        config = self.config
        linear = _clip(_number(payload, 'linear'), -config.max_manual_reverse,
                       config.max_manual_linear)
        angular = _clip(_number(payload, 'angular'), -config.max_manual_angular,
                        config.max_manual_angular)
        effects = (Effect('manual_cmd', (linear, angular)),)
        previous, self._last_manual = self._last_manual, (linear, angular)
        message = f'manual command {linear:+.2f} m/s {angular:+.2f} rad/s'
        if previous is not None and all(abs(a - b) <= MANUAL_LOG_RESOLUTION
                                        for a, b in zip(previous, (linear, angular))):
            return Outcome(200, message, effects, None)
        return self._accepted(requester, now, 'manual_cmd', who, why,
                              {'linear': linear, 'angular': angular,
                               'requested_linear': payload.get('linear'),
                               'requested_angular': payload.get('angular')}, message, effects)

    def reset_answered(self, requester: Requester, now: float, who: str, why: str,
                       success: bool | None, message: str) -> dict[str, Any]:
        """The safety monitor's answer to a reset (None: it did not answer); logged."""
        answer = message if success is not None else f'no answer: {message}'
        record = self._record(requester, now, action='reset_result', who=who, why=why,
                              params={'success': success}, status=200 if success else 409,
                              message=answer)
        with self._lock:
            self.last_reset = {'success': success, 'message': message, 'time': now}
        self.audit.append(record)
        return record

    @staticmethod
    def _require_operator(who: str) -> None:
        if not who:
            raise CommandError(400, 'enter your name (operator) before sending commands')

    # --------------------------------------------------------------------------- records
    def _accepted(self, requester: Requester, now: float, action: str, who: str, why: str,
                  params: dict[str, Any], message: str, effects: tuple[Effect, ...]) -> Outcome:
        record = self._record(requester, now, action=action, who=who, why=why, params=params,
                              status=200, message=message)
        self.audit.append(record)
        return Outcome(200, message, effects, record)

    def _refused(self, requester: Requester, now: float, action: str, payload: Any,
                 error: CommandError) -> Outcome:
        who = payload.get('operator', '') if isinstance(payload, dict) else ''
        why = payload.get('note', '') if isinstance(payload, dict) else ''
        record = self._record(requester, now, action=action,
                              who=str(who)[:MAX_TEXT], why=str(why)[:MAX_TEXT],
                              params={}, status=error.status, message=error.message)
        self.audit.append(record)
        return Outcome(error.status, error.message, (), record)

    @staticmethod
    def _record(requester: Requester, now: float, *, action: str, who: str, why: str,
                params: dict[str, Any], status: int, message: str) -> dict[str, Any]:
        return {'time': utc_now(), 'stamp': round(now, 3), 'who': who, 'from': requester.remote,
                'action': action, 'why': why, 'params': params,
                'result': 'accepted' if status == 200 else 'refused', 'status': status,
                'message': message}
