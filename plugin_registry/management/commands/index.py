"""``services-ai index``: the embedded devpi plugin index (init, replica, start, stop, status,
publish)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from plugin_registry.authoring.publishing import CheckFailed, publish
from plugin_registry.distribution import index_server
from plugin_registry.distribution.catalogue import inspect_wheel
from plugin_registry.distribution.index import INDEXES, IndexClient, IndexConfig
from services_ai.cli import ActionCommand


class Command(ActionCommand):
    help = "Run the embedded plugin index (devpi-server) and publish wheels to it."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        init = actions.add_parser("init", help="Create the index, its user and indexes (once).")
        init.add_argument("--port", type=int, help="Port on 127.0.0.1 (default 3141).")
        replica = actions.add_parser(
            "replica",
            help="Set up and start a devpi replica of a primary index in this home, on 127.0.0.1.",
        )
        replica.add_argument(
            "--primary-url",
            required=True,
            metavar="URL",
            help="The primary devpi-server's root URL, e.g. https://index.internal.",
        )
        replica.add_argument("--port", type=int, help="Port on 127.0.0.1 (default 3141).")
        replica.add_argument(
            "--secret-file",
            type=Path,
            metavar="PATH",
            help="A copy of the primary's secret file (its $SERVICES_AI_HOME/index/secret); "
            "needed the first time, then kept in this home's index/secret.",
        )
        replica.add_argument(
            "--wait",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="How long to wait for the replica to catch up with the primary (default 60).",
        )
        actions.add_parser("start", help="Start devpi-server in the background.")
        actions.add_parser("stop", help="Stop devpi-server.")
        actions.add_parser("status", help="Say whether the index runs and what it holds.")
        publish = actions.add_parser("publish", help="Upload wheels with a login token.")
        publish.add_argument("paths", nargs="+", metavar="PATH", type=Path)
        publish.add_argument("--index", choices=INDEXES, default="stable")
        publish.add_argument(
            "--dependency",
            action="store_true",
            help="The wheels are libraries plugins depend on, not plugins: upload them unchecked.",
        )

    def do_init(self, port: int | None = None, **options: Any) -> None:
        config = IndexConfig.load()
        if not config.embedded:
            raise CommandError(
                "SERVICES_AI_INDEX_URL points at an existing devpi; `index init` only sets up "
                "the embedded one"
            )
        index_server.init(self.say, port)
        config = IndexConfig.load()
        self.say(f"plugin index ready: {config.index_url('stable')} (dev: {config.dev})")

    def do_replica(
        self,
        primary_url: str,
        port: int | None = None,
        secret_file: Path | None = None,
        wait: float = 60.0,
        **options: Any,
    ) -> None:
        state = index_server.replica(self.say, primary_url, port, secret_file, wait)
        config = IndexConfig.load()
        self.say(
            f"this node reads the index from its replica: SERVICES_AI_INDEX_URL="
            f"{state.url}/{config.user}/{config.stable} (writes sent there are relayed to the "
            "primary)"
        )

    def do_start(self, **options: Any) -> None:
        index_server.start(self.say)

    def do_stop(self, **options: Any) -> None:
        index_server.stop(self.say)

    def do_status(self, **options: Any) -> None:
        config = IndexConfig.load()
        state = index_server.status()
        if config.embedded or state.initialised:
            running = f"running (pid {state.pid})" if state.running else "not running"
            if not state.initialised:
                running = "not set up (run `services-ai index init`)"
            self.say(f"embedded index at {state.url}: {running}")
            if state.running:
                self._say_replication(state)
            elif state.primary_url:
                self.say(f"a replica of {state.primary_url}")
            if config.embedded and not state.running:
                return
        client = IndexClient(config)
        for index in INDEXES:
            projects = client.projects(index)
            self.say(f"{config.index_url(index)}: {len(projects)} project(s)")

    def _say_replication(self, state: index_server.Status) -> None:
        """The server's replication role, from devpi's ``/+status``: of what, how far behind."""
        local = index_server.replication(state.url)
        if local is None:
            return
        serial = int(local.get("serial", -1))
        if local.get("role") != "REPLICA":
            followers = local.get("polling_replicas") or {}
            lines = [
                f"  {info.get('outside-url') or info.get('remote-ip')}: serial "
                f"{info.get('serial')}, last asked {_ago(info.get('last-request'))}"
                for info in followers.values()
            ]
            self.say(
                f"devpi primary at serial {serial}: {len(followers)} replica(s) following it"
                + "".join(f"\n{line}" for line in lines)
            )
            return
        primary_url = local.get("primary-url") or state.primary_url or "?"
        primary = index_server.replication(primary_url)
        if primary is not None:
            lag = int(primary["serial"]) - serial
            behind = "in sync" if lag <= 0 else f"{lag} behind"
            self.say(
                f"a replica of {primary_url}: at serial {serial}, the primary at "
                f"{primary['serial']} ({behind})"
            )
        else:
            updated = local.get("update-from-primary-at")
            last = (
                f"last update from it {_ago(updated)}, at serial {local.get('primary-serial')}"
                if updated
                else "no update from it since this replica started"
            )
            self.say(
                f"a replica of {primary_url}: at serial {serial}; the primary is not reachable "
                f"({last}); installs read what this replica holds, writes fail until it is back"
            )

    def do_publish(
        self, paths: list[Path], index: str, dependency: bool = False, **options: Any
    ) -> None:
        wheels: list[Path] = []
        for path in paths:
            if path.is_dir():
                wheels += sorted(path.glob("*.whl"))
            elif path.suffix == ".whl" and path.is_file():
                wheels.append(path)
            else:
                raise CommandError(f"{path}: not a wheel file or a folder of wheels")
        if not wheels:
            raise CommandError("no wheels to publish")
        client = IndexClient()
        refused = 0
        for wheel in wheels:
            if dependency:
                if inspect_wheel(wheel.read_bytes(), wheel.name).is_plugin:
                    raise CommandError(
                        f"{wheel.name} is a plugin (it declares a services_ai entry point); "
                        "publish it without --dependency, so that it is checked"
                    )
                outcome = client.upload(wheel, index)
                self.say(
                    f"{wheel.name}: {outcome}, as a dependency ({client.config.index_url(index)})"
                )
                continue
            try:
                published = publish(wheel, index, client=client)
            except CheckFailed as exc:
                refused += 1
                self.stderr.write(f"{wheel.name}: refused, {len(exc.problems)} problem(s):")
                for problem in exc.problems:
                    self.stderr.write(f"  {problem}")
                continue
            self.say(f"{wheel.name}: {published.outcome} ({published.url})")
        if refused:
            raise CommandError(
                f"{refused} of {len(wheels)} wheel(s) refused and not published; fix them and "
                "publish again (`services-ai plugin check WHEEL` shows the same problems)"
            )


def _ago(timestamp: float | None) -> str:
    if not timestamp:
        return "never"
    return f"{max(0.0, time.time() - timestamp):.0f} s ago"
