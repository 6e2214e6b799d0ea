"""Nodes: every host that runs the platform says which plugin environment it runs.

A node is named by ``SERVICES_AI_NODE`` (default: the host name). Its worker supervisor and its
web processes write a heartbeat every few seconds with the environment generation they run;
comparing it with the database's active generation shows the skew while a change spreads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from plugin_registry.registry.models import EnvironmentGeneration, NodeHeartbeat
from services_ai import conf

logger = logging.getLogger("plugin_registry.nodes")

NODE_ENV = "SERVICES_AI_NODE"
BEAT_EVERY = 5.0  # seconds between two heartbeats of one process
GONE_AFTER = timedelta(seconds=60)  # a node silent this long is shown as gone


def node_name() -> str:
    """Return this node's name: ``SERVICES_AI_NODE``, else the host name."""
    return (os.environ.get(NODE_ENV) or socket.gethostname())[:200]


def generation_number(path: object) -> int | None:
    """Return the number of a generation folder (``.../generations/0007`` -> 7), or None."""
    name = getattr(path, "name", "")
    return int(name) if isinstance(name, str) and name.isdigit() else None


def active_number() -> int | None:
    """Return the number of the database's active generation, or None before any install."""
    return (
        EnvironmentGeneration.objects.filter(status=EnvironmentGeneration.Status.ACTIVE)
        .values_list("number", flat=True)
        .first()
    )


def runs_behind() -> bool:
    """Does this node's environment (its ``env/active`` link) lag the database's active one?"""
    active = active_number()
    return active is not None and generation_number(conf.active_generation_dir()) != active


_last_beat: dict[str, float] = {}


def beat(role: str, generation: int | None, *, force: bool = False) -> bool:
    """Write this process's heartbeat (at most every BEAT_EVERY s); return whether it did."""
    now = time.monotonic()
    if not force and now - _last_beat.get(role, -BEAT_EVERY) < BEAT_EVERY:
        return False
    _last_beat[role] = now
    NodeHeartbeat.objects.update_or_create(
        node=node_name(),
        role=role,
        defaults={"pid": os.getpid(), "generation": generation, "heartbeat_at": timezone.now()},
    )
    return True


@dataclass(frozen=True)
class NodeState:
    node: str
    role: str
    pid: int
    generation: int | None
    heartbeat_at: datetime
    active: int | None

    @property
    def age(self) -> float:
        return (timezone.now() - self.heartbeat_at).total_seconds()

    @property
    def state(self) -> str:
        if timezone.now() - self.heartbeat_at > GONE_AFTER:
            return "gone"
        if self.active is not None and self.generation != self.active:
            return "behind"
        return "current"


def nodes() -> list[NodeState]:
    """Every node's heartbeats, with the active generation to compare."""
    active = active_number()
    return [
        NodeState(row.node, row.role, row.pid, row.generation, row.heartbeat_at, active)
        for row in NodeHeartbeat.objects.all()
    ]
