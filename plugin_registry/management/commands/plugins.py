"""``services-ai plugins``: list, enable, disable, grant, revoke, configure and sync plugins."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from plugin_registry.distribution.reconcile import registry_action
from plugin_registry.management.environment_actions import (
    ENVIRONMENT_ACTIONS,
    EnvironmentActions,
    dumps,
)
from plugin_registry.registry import actions, nodes
from plugin_registry.registry.models import Plugin
from plugin_registry.registry.secrets import new_key
from plugin_registry.registry.settings_store import missing_required, rotate_secrets
from plugin_registry.registry.sync import SyncReport, installed_plugins
from services_ai import conf
from services_ai.cli import require_migrated


class Command(EnvironmentActions, BaseCommand):
    help = "Manage installed plugins: list, enable, disable, grant, revoke, configure, sync."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        listing = actions.add_parser("list", help="List installed plugins.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        sync = actions.add_parser(
            "sync",
            help="Mirror installed distributions into the registry; with LOCK, install exactly "
            "the plugin set of a hash-pinned lock file first.",
        )
        sync.add_argument("lock", nargs="?", type=Path, metavar="LOCK")
        catalogue = actions.add_parser("catalogue", help="The plugins on the index.")
        catalogue.add_argument("--json", action="store_true", help="Print JSON.")
        catalogue.add_argument(
            "--offline",
            action="store_true",
            help="Show the stored catalogue; do not read the index.",
        )
        install = actions.add_parser("install", help="Install plugins: NAME[==VERSION] ...")
        install.add_argument("requirements", nargs="+", metavar="NAME[==VERSION]")
        upgrade = actions.add_parser(
            "upgrade", help="Move an installed plugin to the newest (or the given) version."
        )
        upgrade.add_argument("requirement", metavar="NAME[==VERSION]")
        actions.add_parser("uninstall", help="Uninstall a plugin.").add_argument("name")
        rollback = actions.add_parser("rollback", help="Switch back to the previous generation.")
        rollback.add_argument("--to", type=int, metavar="N", help="A generation number.")
        history = actions.add_parser("history", help="The generations of the environment.")
        history.add_argument("--json", action="store_true", help="Print JSON.")
        lock = actions.add_parser(
            "lock", help="Write the active generation's lock (or resolve --input) to a file."
        )
        lock.add_argument("-o", "--output", type=Path, default=Path("plugins.lock"))
        lock.add_argument("--input", type=Path, help="Resolve this plugins.in instead.")
        check = actions.add_parser("check", help="Exit non-zero if the environment drifts.")
        check.add_argument("lock", type=Path, metavar="LOCK")
        for action, what in (
            ("withdraw", "Mark a version withdrawn: it can no longer be installed."),
            ("restore", "Lift a withdrawal."),
        ):
            sub = actions.add_parser(action, help=what)
            sub.add_argument("requirement", metavar="NAME==VERSION")
            if action == "withdraw":
                sub.add_argument("--reason", default="")
        actions.add_parser("recover", help="Finish or undo an interrupted environment change.")
        actions.add_parser(
            "host-wheels",
            help="Print the folder of metadata-only wheels of the platform's packages (for "
            "pip-compile --find-links).",
        )
        for action, what in (("enable", "Enable a plugin."), ("disable", "Disable a plugin.")):
            actions.add_parser(action, help=what).add_argument("name")
        for action, what in (("grant", "Grant a permission."), ("revoke", "Revoke a permission.")):
            sub = actions.add_parser(action, help=what)
            sub.add_argument("name")
            sub.add_argument("permission")
        configure = actions.add_parser(
            "configure",
            help="Set settings: KEY=VALUE ... (KEY=- reads the value from standard input, one "
            "line per key, so secrets stay out of the process list and shell history)",
        )
        configure.add_argument("name")
        configure.add_argument("values", nargs="+", metavar="KEY=VALUE")
        rotate = actions.add_parser(
            "rotate-secrets",
            help="Re-encrypt every secret setting with the first key of SERVICES_AI_SECRET_KEYS "
            "(or of the key file); --new-key prints a new key and changes nothing.",
        )
        rotate.add_argument(
            "--new-key", action="store_true", help="Print a new key to put first; change nothing."
        )

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "rotate-secrets" and options.get("new_key"):
            self.stdout.write(new_key())  # needs no database
            return
        require_migrated()
        if action == "rotate-secrets":
            try:
                self.do_rotate_secrets()
            except actions.RegistryError as exc:
                raise CommandError(str(exc)) from None
            return
        if action == "list":
            self.do_list(**options)
            return
        if action in ENVIRONMENT_ACTIONS or (action == "sync" and options.get("lock")):
            try:
                getattr(self, f"env_{action.replace('-', '_')}")(**options)
            except actions.RegistryError as exc:
                raise CommandError(str(exc)) from None
            return

        # The mirror is refreshed first, and in the same transaction as the action: a refused
        # action rolls everything back, so bad input changes nothing. A node whose managed
        # environment lags behind the database catches up first.
        def run(report: SyncReport) -> None:
            self.sync_report = report
            getattr(self, f"do_{action}")(**options)

        try:
            registry_action(run, self.stdout.write)
        except actions.RegistryError as exc:
            raise CommandError(str(exc)) from None

    def do_sync(self, **options: Any) -> None:
        report = self.sync_report
        for label, names in (
            ("added", report.added),
            ("updated", report.updated),
            ("not installed", report.removed),
        ):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        for error in report.invalid.values():
            self.stderr.write(f"invalid: {error}")
        self.stdout.write(self.style.SUCCESS("registry in sync with installed plugins"))

    def do_list(self, *, json: bool = False, **options: Any) -> None:
        rows = [self._row(plugin) for plugin in Plugin.objects.prefetch_related("permissions")]
        if json:
            self.stdout.write(dumps(rows))
            return
        mirrored = {(row["name"], row["version"]) for row in rows if row["installed"]}
        found = {(name, p.metadata.version) for name, p in installed_plugins().items()}
        if mirrored != found:
            self.stdout.write(
                self.style.WARNING(
                    "the installed plugins changed since the last sync: "
                    "run `services-ai plugins sync`"
                )
            )
        runs = nodes.generation_number(conf.active_generation_dir())
        active = nodes.active_number()
        self.stdout.write(
            f"this node ({nodes.node_name()}) runs plugin environment generation "
            f"{runs if runs is not None else 'none'}"
            + ("" if runs == active else f"; the database's active generation is {active}")
        )
        if not rows:
            self.stdout.write("no plugins installed")
            return
        for row in rows:
            state = "enabled" if row["enabled"] else "disabled"
            if row["quarantined"] and row["enabled"]:
                state = "quarantined"
            if not row["installed"]:
                state = "not installed"
            perms = ", ".join(
                f"{p}{'' if ok else ' (not granted)'}" for p, ok in row["permissions"].items()
            )
            self.stdout.write(f"{row['name']} {row['version']}  [{state}]  {row['summary']}")
            self.stdout.write(f"    permissions: {perms or 'none'}")
            if row["missing_settings"]:
                self.stdout.write(
                    f"    required settings not set: {', '.join(row['missing_settings'])}"
                )
            for problem in (row["manifest_error"], row["load_error"]):
                if problem:
                    self.stdout.write(self.style.ERROR(f"    {problem}"))
            if row["quarantined"]:
                self.stdout.write(
                    self.style.ERROR(
                        f"    quarantined: {row['quarantine_reason']}; its events are held. "
                        f"Fix or upgrade it, then `services-ai plugins enable {row['name']}` "
                        "lifts the quarantine"
                    )
                )

    @staticmethod
    def _row(plugin: Plugin) -> dict[str, Any]:
        return {
            "name": plugin.name,
            "version": plugin.version,
            "summary": plugin.summary,
            "author": plugin.author,
            "email": plugin.author_email,
            "entry_point": plugin.entry_point,
            "installed": plugin.installed,
            "enabled": plugin.enabled,
            "hooks": plugin.hooks,
            "permissions": {p.name: p.granted for p in plugin.permissions.all() if p.requested},
            "missing_settings": missing_required(plugin) if not plugin.manifest_error else [],
            "manifest_error": plugin.manifest_error,
            "load_error": plugin.load_error,
            "quarantined": plugin.quarantined_at is not None,
            "quarantine_reason": plugin.quarantine_reason,
        }

    def do_enable(self, *, name: str, **options: Any) -> None:
        plugin = actions.enable(name, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"enabled {plugin.name}"))
        ungranted = plugin.permissions.filter(requested=True, granted=False)
        for perm in ungranted.values_list("name", flat=True):
            self.stdout.write(
                f"  {perm} is not granted: `services-ai plugins grant {plugin.name} {perm}`"
            )

    def do_disable(self, *, name: str, **options: Any) -> None:
        plugin = actions.disable(name, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"disabled {plugin.name}"))

    def do_grant(self, *, name: str, permission: str, **options: Any) -> None:
        actions.set_grant(name, permission, True, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"granted {permission} to {name}"))

    def do_revoke(self, *, name: str, permission: str, **options: Any) -> None:
        actions.set_grant(name, permission, False, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"revoked {permission} from {name}"))

    def do_configure(self, *, name: str, values: list[str], **options: Any) -> None:
        pairs: dict[str, str] = {}
        for item in values:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"expected KEY=VALUE, got {item!r}")
            if value == "-":
                value = self._read_value(key)
            pairs[key.strip()] = value
        stored = actions.configure(name, pairs, actor="cli")
        self.stdout.write(self.style.SUCCESS(f"configured {name}: {', '.join(stored)}"))

    def do_rotate_secrets(self) -> None:
        done, keys = rotate_secrets(actor="cli")
        self.stdout.write(
            self.style.SUCCESS(
                f"re-encrypted {done.rotated} secret setting(s) with the first of "
                f"{keys.describe()}"
                + (f"; encrypted {done.encrypted} plaintext one(s)" if done.encrypted else "")
            )
        )
        if keys.count > 1:
            self.stdout.write(
                "every secret now opens with the first key: once every process runs with it "
                "first, the other key(s) can be removed"
            )

    def _read_value(self, key: str) -> str:
        if sys.stdin.isatty():
            return getpass.getpass(f"{key}: ")
        line = sys.stdin.readline()
        if not line:
            raise CommandError(f"{key}=- but standard input is empty")
        return line.rstrip("\n")
