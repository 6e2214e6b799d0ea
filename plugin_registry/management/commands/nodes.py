"""``services-ai nodes``: every node, the plugin environment it runs, its heartbeat and skew."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from plugin_registry.registry import nodes
from services_ai.cli import require_migrated


class Command(BaseCommand):
    help = "List the nodes (web and worker processes per host), their generation and skew."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, json: bool = False, **options: Any) -> None:
        require_migrated()
        rows = nodes.nodes()
        active = nodes.active_number()
        if json:
            self.stdout.write(_dumps(rows, active))
            return
        this = nodes.node_name()
        self.stdout.write(f"active generation: {active if active is not None else 'none'}")
        if not rows:
            self.stdout.write(
                "no node has reported yet (web processes and `services-ai worker` report every "
                f"{nodes.BEAT_EVERY:g}s)"
            )
            return
        self.stdout.write(
            f"{'node':<28}{'role':<8}{'pid':>8}{'generation':>12}{'heartbeat':>12}  state"
        )
        for row in rows:
            name = f"{row.node} (this)" if row.node == this else row.node
            generation = "none" if row.generation is None else str(row.generation)
            state = row.state
            style = {"current": self.style.SUCCESS, "behind": self.style.WARNING}.get(
                state, self.style.ERROR
            )
            self.stdout.write(
                f"{name:<28}{row.role:<8}{row.pid:>8}{generation:>12}{row.age:>11.0f}s  "
                + style(state)
            )


def _dumps(rows: list[nodes.NodeState], active: int | None) -> str:
    return json.dumps(
        {
            "active": active,
            "nodes": [
                {
                    "node": row.node,
                    "role": row.role,
                    "pid": row.pid,
                    "generation": row.generation,
                    "heartbeat_at": row.heartbeat_at.isoformat(),
                    "age_seconds": round(row.age, 1),
                    "state": row.state,
                }
                for row in rows
            ],
        },
        indent=2,
    )
