"""The managed-environment actions of ``services-ai plugins`` (catalogue, install, lock, ...)."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from plugin_registry.distribution.catalogue import (
    by_project,
    set_withdrawn,
    sync_catalogue,
    why_not,
)
from plugin_registry.distribution.changes import change_lock
from plugin_registry.distribution.environment import Environment
from plugin_registry.distribution.host_wheels import host_wheels
from plugin_registry.distribution.lockfile import LockError, format_in, parse_in
from plugin_registry.distribution.reconcile import drift, history
from plugin_registry.registry.models import CatalogueVersion, Plugin


def dumps(rows: list[dict[str, Any]]) -> str:
    return jsonlib.dumps(rows, indent=2, sort_keys=True)


ENVIRONMENT_ACTIONS = {
    "catalogue", "install", "upgrade", "uninstall", "rollback", "history", "lock", "check",
    "withdraw", "restore", "recover", "host-wheels",
}  # fmt: skip


def _requirement(text: str, *, exact: bool = False) -> tuple[str, str | None]:
    name, sep, version = text.partition("==")
    if not name.strip() or (sep and not version.strip()) or any(c in name for c in "<>=!~ "):
        raise CommandError(f"{text!r}: give NAME or NAME==VERSION")
    if exact and not sep:
        raise CommandError(f"{text!r}: give NAME==VERSION")
    return name.strip(), version.strip() if sep else None


class EnvironmentActions:
    """The managed-environment actions of ``services-ai plugins``."""

    stdout: Any

    def say(self, message: str) -> None:
        self.stdout.write(message)

    def environment(self) -> Environment:
        return Environment(say=self.say)

    def env_catalogue(self, *, json: bool = False, offline: bool = False, **options: Any) -> None:
        if not offline:
            report = sync_catalogue(say=self.say)
            if not json and (report.new or report.gone):
                self.say(f"catalogue: {len(report.new)} new, {len(report.gone)} gone")
        installed = dict(Plugin.objects.filter(installed=True).values_list("name", "version"))
        projects = by_project(CatalogueVersion.objects.filter(is_plugin=True, available=True))
        if json:
            rows = [
                {
                    "name": name,
                    "installed": installed.get(name),
                    "summary": versions[0].summary,
                    "versions": [
                        {
                            "version": v.version,
                            "installable": v.installable,
                            "compatible": v.compatible,
                            "compatibility": v.compatibility,
                            "withdrawn": v.withdrawn,
                            "withdrawn_reason": v.withdrawn_reason,
                            "permissions": v.permissions,
                            "settings": [s.get("name") for s in v.settings],
                            "manifest_error": v.manifest_error,
                            "sha256": v.sha256,
                        }
                        for v in versions
                    ],
                }
                for name, versions in projects.items()
            ]
            self.stdout.write(dumps(rows))
            return
        if not projects:
            self.say("no plugins on the index")
        for name, versions in projects.items():
            here = f"  [installed {installed[name]}]" if installed.get(name) else ""
            self.say(f"{name}{here}  {versions[0].summary}")
            for v in versions:
                verdict = "ok" if v.installable else why_not(v)
                perms = ", ".join(v.permissions) or "none"
                self.say(f"    {v.version:<12} {verdict}; permissions: {perms}")

    def env_install(self, *, requirements: list[str], **options: Any) -> None:
        wanted = dict(_requirement(text) for text in requirements)
        self.environment().install(wanted, "install " + " ".join(requirements), actor="cli")

    def env_upgrade(self, *, requirement: str, **options: Any) -> None:
        name, version = _requirement(requirement)
        environment = self.environment()
        if name.lower().replace("_", "-") not in environment.requested():
            raise CommandError(f"{name} is not installed: `services-ai plugins install {name}`")
        environment.install({name: version}, f"upgrade {requirement}", actor="cli")

    def env_uninstall(self, *, name: str, **options: Any) -> None:
        self.environment().uninstall(name, actor="cli")

    def env_rollback(self, *, to: int | None = None, **options: Any) -> None:
        self.environment().rollback(to, actor="cli")

    def env_recover(self, **options: Any) -> None:
        environment = self.environment()

        with change_lock(self.say):
            environment.recover()
        active = environment.active()
        self.say(f"environment consistent: generation {active.number if active else '-'} active")

    def env_history(self, *, json: bool = False, **options: Any) -> None:
        rows = [
            {
                "generation": g.number,
                "status": g.status,
                "change": g.action,
                "by": g.actor,
                "built": g.created_at.isoformat(timespec="seconds"),
                "activated": g.activated_at.isoformat(timespec="seconds")
                if g.activated_at
                else None,
                "plugins": g.requested,
                "error": g.error,
            }
            for g in history()
        ]
        if json:
            self.stdout.write(dumps(rows))
            return
        if not rows:
            self.say("no environment generations yet: `services-ai plugins install NAME`")
        for row in rows:
            mark = "*" if row["status"] == "active" else " "
            plugins = ", ".join(f"{n}=={v}" for n, v in sorted(row["plugins"].items())) or "-"
            self.say(
                f"{mark} {row['generation']:>4}  {row['status']:<8}  {row['built']}  "
                f"{row['change']}  [{plugins}]"
            )
            if row["error"]:
                self.say(f"         {row['error'].splitlines()[0][:200]}")

    def env_lock(self, *, output: Path, input: Path | None = None, **options: Any) -> None:
        environment = self.environment()
        if input is not None:
            text = environment.resolve(parse_in(_read(input), str(input)))
        else:
            active = environment.active()
            if active is None:
                raise CommandError("nothing installed yet: no lock to write")
            text = active.lock
            output.with_suffix(".in").write_text(format_in(active.requested))
            self.say(f"wrote {output.with_suffix('.in')}")
        output.write_text(text)
        self.say(f"wrote {output}")

    def env_sync(self, *, lock: Path, **options: Any) -> None:
        self.environment().sync_lock(_read(lock), str(lock), actor="cli")

    def env_check(self, *, lock: Path, **options: Any) -> None:
        problems = drift(_read(lock), str(lock))
        if problems:
            for problem in problems:
                self.stdout.write(problem)
            raise CommandError(f"the plugin environment drifts from {lock} ({len(problems)})")
        self.say(f"the plugin environment matches {lock}")

    def env_host_wheels(self, **options: Any) -> None:
        self.stdout.write(str(host_wheels()[0]))

    def env_withdraw(self, *, requirement: str, reason: str = "", **options: Any) -> None:
        name, version = _requirement(requirement, exact=True)
        row = set_withdrawn(name, version or "", True, reason, actor="cli")
        self.say(f"withdrew {row.name}=={row.version}: it can no longer be installed")

    def env_restore(self, *, requirement: str, **options: Any) -> None:
        name, version = _requirement(requirement, exact=True)
        row = set_withdrawn(name, version or "", False, actor="cli")
        self.say(f"{row.name}=={row.version} can be installed again")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise LockError(f"cannot read {path}: {exc.strerror}") from None
