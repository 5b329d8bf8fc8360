"""Questions to the operator: assistance requests, their answers and their life cycle.

The JSON on operator/assist_request and operator/assist_response is the contract of
docs/operations.md. One request is open at a time; every change of its status is published
again with the same id. Pure Python: times are passed in, nothing reads a clock.
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace

from sidewalk_robot.planning.geometry import Pose2D

BLOCKED, CROSSING, MODEL_HEALTH = 'blocked', 'crossing', 'model_health'
KINDS = (BLOCKED, CROSSING, MODEL_HEALTH)
QUESTIONS = {BLOCKED: 'blocked: take the detour?',
             CROSSING: 'crossing: go?',
             MODEL_HEALTH: 'model health degraded: drive on at reduced speed?'}

REQUESTED, APPROVED, DECLINED, EXPIRED, RESOLVED = (
    'requested', 'approved', 'declined', 'expired', 'resolved')
APPROVE, DECLINE = 'approve', 'decline'


@dataclass(frozen=True)
class AssistRequest:
    """One question to the operator, as published (again) on each change of status."""
    id: str
    kind: str
    status: str
    reason: str
    """Why the planner asks (or, once closed, why it closed)."""
    pose: Pose2D
    time: float
    """When this status was reached (node clock) [s]."""
    goal: tuple[float, float]
    expires_at: float | None = None
    """An approval must be used by then (crossings); None: it does not expire."""
    operator: str = ''
    """Who answered (approved or declined)."""
    note: str = ''
    """The operator's note with an answer; the planner's with expired and resolved."""

    @property
    def question(self) -> str:
        return QUESTIONS[self.kind]

    @property
    def is_open(self) -> bool:
        return self.status in (REQUESTED, APPROVED)

    def changed(self, status: str, now: float, **changes: object) -> AssistRequest:
        return replace(self, status=status, time=now, **changes)

    def as_dict(self, frame_id: str) -> dict[str, object]:
        return {'id': self.id, 'kind': self.kind, 'status': self.status,
                'question': self.question, 'reason': self.reason, 'time': self.time,
                'expires_at': self.expires_at, 'operator': self.operator, 'note': self.note,
                'pose': {'frame_id': frame_id, 'x': self.pose.x, 'y': self.pose.y,
                         'yaw': self.pose.yaw},
                'goal': {'frame_id': frame_id, 'x': self.goal[0], 'y': self.goal[1]}}


def new_request(kind: str, reason: str, pose: Pose2D, now: float,
                goal: tuple[float, float]) -> AssistRequest:
    if kind not in KINDS:
        raise ValueError(f'unknown assistance kind {kind!r}')
    # A random id stays unique across planner restarts, which a counter would not.
    return AssistRequest(f'{kind}-{uuid.uuid4().hex[:12]}', kind, REQUESTED, reason, pose, now,
                         goal)


@dataclass(frozen=True)
class AssistResponse:
    """An operator's answer to the request ``request_id``."""
    request_id: str
    decision: str
    operator: str
    note: str = ''

    @property
    def approves(self) -> bool:
        return self.decision == APPROVE


def parse_assist_response(text: str) -> AssistResponse:
    """The JSON of operator/assist_response; ValueError says what is wrong with it."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'assist response is not JSON: {error}') from error
    if not isinstance(document, dict):
        raise ValueError('assist response must be a JSON object')
    request_id, decision = document.get('id'), document.get('decision')
    operator, note = document.get('operator', ''), document.get('note', '')
    if not isinstance(request_id, str) or not request_id:
        raise ValueError('assist response has no request "id"')
    if decision not in (APPROVE, DECLINE):
        raise ValueError(f'assist response decision must be "approve" or "decline", '
                         f'got {decision!r}')
    if not isinstance(operator, str) or not operator:
        raise ValueError('assist response names no "operator"')
    if not isinstance(note, str):
        raise ValueError('assist response "note" must be a string')
    return AssistResponse(request_id, decision, operator, note)


class AssistDesk:
    """The one open request and what has to be published about it.

    ``outbox`` collects every request whose status changed, in order, until the planner's
    next cycle hands them to the node.
    """

    def __init__(self) -> None:
        self.open: AssistRequest | None = None
        self.outbox: list[AssistRequest] = []
        self.declined_at: dict[str, float] = {}
        """Per kind, when the operator last declined: the question waits before it comes back."""

    def ask(self, kind: str, reason: str, pose: Pose2D, now: float,
            goal: tuple[float, float]) -> AssistRequest:
        if self.open is not None:
            raise RuntimeError(f'a {self.open.kind} request is already open')
        self.open = new_request(kind, reason, pose, now, goal)
        self.outbox.append(self.open)
        return self.open

    def is_open(self, kind: str | None = None) -> bool:
        return self.open is not None and (kind is None or self.open.kind == kind)

    def approved(self, kind: str) -> bool:
        return self.is_open(kind) and self.open.status == APPROVED

    def update(self, status: str, now: float, **changes: object) -> AssistRequest:
        """Publish a new status of the open request; a closing status closes it."""
        request = self.open.changed(status, now, **changes)
        self.open = request if request.is_open else None
        self.outbox.append(request)
        return request

    def answer(self, response: AssistResponse, now: float, *,
               expires_at: float | None = None) -> str | None:
        """Apply an operator's answer; the error says why it was ignored."""
        request = self.open
        if request is None or request.id != response.request_id:
            return (f'assist response for {response.request_id!r} ignored: no such request is '
                    f'open' + (f' (open: {request.id})' if request else ''))
        if request.status != REQUESTED:
            return (f'assist response for {request.id!r} ignored: the request is already '
                    f'{request.status}')
        if response.approves:
            self.update(APPROVED, now, operator=response.operator, note=response.note,
                        expires_at=expires_at)
        else:
            self.declined_at[request.kind] = now
            self.update(DECLINED, now, operator=response.operator, note=response.note)
        return None

    def may_ask(self, kind: str, now: float, retry_interval: float) -> bool:
        """No request open, and the last decline of this kind is retry_interval ago."""
        declined = self.declined_at.get(kind, -math.inf)
        return self.open is None and now - declined >= retry_interval

    def take_outbox(self) -> tuple[AssistRequest, ...]:
        sent, self.outbox = tuple(self.outbox), []
        return sent

    def clear(self, now: float) -> None:
        """A new task: the open question is moot, and says so."""
        if self.open is not None:
            self.update(RESOLVED, now, note='a new goal or route')
        self.declined_at = {}
