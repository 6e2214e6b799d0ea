"""``services-ai plugin``: the author kit (new, check, publish, promote, import-zip)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from plugin_registry.authoring.check import Problem, check_path, checked_wheel
from plugin_registry.authoring.publishing import CheckFailed, publish
from plugin_registry.authoring.scaffold import scaffold
from plugin_registry.distribution.index import INDEXES, IndexClient, IndexConfig
from services_ai.cli import ActionCommand
from services_ai.plugins.hookspecs import HOOK_NAMES


class Command(ActionCommand):
    help = "Write, check, build and publish plugins."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
        new = actions.add_parser("new", help="Write a ready plugin project NAME/.")
        new.add_argument("name")
        new.add_argument(
            "--hooks",
            default="lead_created",
            help="Comma-separated hooks to implement (default lead_created): "
            + ", ".join(HOOK_NAMES),
        )
        new.add_argument("--dir", type=Path, default=Path("."), help="Where to create it.")
        check = actions.add_parser("check", help="Check a plugin project folder or wheel.")
        check.add_argument("path", type=Path)
        publish = actions.add_parser("publish", help="Check, build and upload a plugin.")
        publish.add_argument("path", type=Path, help="A project folder or a wheel.")
        publish.add_argument("--index", choices=INDEXES, default="dev")
        promote = actions.add_parser("promote", help="Push NAME==VERSION from dev to stable.")
        promote.add_argument("requirement", metavar="NAME==VERSION")
        import_zip = actions.add_parser(
            "import-zip", help="Turn a plugin ZIP of the older layout into a wheel."
        )
        import_zip.add_argument("zip", type=Path)
        import_zip.add_argument("--out", type=Path, default=Path("."), help="Where the wheel goes.")
        import_zip.add_argument(
            "--publish", choices=INDEXES, help="Also publish the wheel to this index."
        )

    def do_new(self, name: str, hooks: str, dir: Path, **options: Any) -> None:
        wanted = [hook.strip() for hook in hooks.split(",") if hook.strip()]
        project = scaffold(name, wanted, dir)
        self.say(f"created {project}")
        self.say(f"next: cd {project} && services-ai plugin check . && python -m pytest")

    def warn(self, warnings: list[Problem]) -> None:
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")

    def do_check(self, path: Path, **options: Any) -> None:
        report = check_path(path)
        self.warn(report.warnings)
        for problem in report.problems:
            self.stderr.write(str(problem))
        if report.problems:
            raise CommandError(f"{path}: {len(report.problems)} problem(s)")
        self.say(f"{report.name} {report.version}: ok")

    def publish(self, path: Path, index: str) -> None:
        try:
            published = publish(path, index, say=self.say)
        except CheckFailed as exc:
            for problem in exc.problems:
                self.stderr.write(str(problem))
            raise CommandError(
                f"{exc.label}: {len(exc.problems)} problem(s); nothing was built or published"
            ) from None
        self.warn(published.warnings)
        self.say(f"{published.wheel}: {published.outcome} ({published.url})")
        if index == "dev":
            self.say(
                f"promote it with `services-ai plugin promote {published.name}=="
                f"{published.version}` once tested"
            )

    def do_publish(self, path: Path, index: str, **options: Any) -> None:
        self.publish(path, index)

    def do_promote(self, requirement: str, **options: Any) -> None:
        name, sep, version = requirement.partition("==")
        if not sep or not name or not version:
            raise CommandError(f"{requirement!r}: give NAME==VERSION")
        IndexClient().push(name, version, "dev", "stable")
        self.say(f"promoted {name}=={version} to {IndexConfig.load().index_url('stable')}")

    def do_import_zip(self, zip: Path, out: Path, publish: str | None, **options: Any) -> None:
        if publish:
            self.publish(zip, publish)
            return
        out.mkdir(parents=True, exist_ok=True)
        wheel, report = checked_wheel(zip, out)
        self.warn(report.warnings)
        for problem in report.problems:
            self.stderr.write(str(problem))
        if report.problems:
            wheel.unlink()
            raise CommandError(f"{zip.name}: {len(report.problems)} problem(s); no wheel written")
        self.say(f"converted {zip.name} into {wheel}")
