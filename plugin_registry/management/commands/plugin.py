"""``services-ai plugin``: the author kit (new, check, publish, promote, import-zip)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from plugin_registry import authoring
from plugin_registry.index import INDEXES, IndexClient, IndexConfig
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
        project = authoring.scaffold(name, wanted, dir)
        self.say(f"created {project}")
        self.say(f"next: cd {project} && services-ai plugin check . && python -m pytest")

    def check_or_fail(self, path: Path) -> authoring.CheckReport:
        report = authoring.check_path(path)
        for problem in report.problems:
            self.stderr.write(str(problem))
        if report.problems:
            raise CommandError(
                f"{path}: {len(report.problems)} problem(s); nothing was built or published"
            )
        return report

    def do_check(self, path: Path, **options: Any) -> None:
        report = self.check_or_fail(path)
        self.say(f"{report.name} {report.version}: ok")

    def do_publish(self, path: Path, index: str, **options: Any) -> None:
        self.check_or_fail(path)
        client = IndexClient()
        client.ping()
        with tempfile.TemporaryDirectory(prefix="plugin-build-") as tmp:
            wheel = path
            if path.is_dir():
                wheel = authoring.build(path, Path(tmp))
                self.say(f"built {wheel.name}")
                self.check_or_fail(wheel)
            outcome = client.upload(wheel, index)
        self.say(f"{wheel.name}: {outcome} ({client.config.index_url(index)})")
        if index == "dev":
            self.say(
                f"promote it with `services-ai plugin promote {authoring_name(wheel)}` once tested"
            )

    def do_promote(self, requirement: str, **options: Any) -> None:
        name, sep, version = requirement.partition("==")
        if not sep or not name or not version:
            raise CommandError(f"{requirement!r}: give NAME==VERSION")
        IndexClient().push(name, version, "dev", "stable")
        self.say(f"promoted {name}=={version} to {IndexConfig.load().index_url('stable')}")

    def do_import_zip(self, zip: Path, out: Path, publish: str | None, **options: Any) -> None:
        from plugin_registry.legacy_zip import convert_legacy_zip

        out.mkdir(parents=True, exist_ok=True)
        wheel = convert_legacy_zip(zip, out)
        self.say(f"converted {zip.name} into {wheel}")
        self.check_or_fail(wheel)
        if publish:
            outcome = IndexClient().upload(wheel, publish)
            self.say(f"{wheel.name}: {outcome} ({IndexConfig.load().index_url(publish)})")


def authoring_name(wheel: Path) -> str:
    from packaging.utils import parse_wheel_filename

    name, version, _, _ = parse_wheel_filename(wheel.name)
    return f"{name}=={version}"
