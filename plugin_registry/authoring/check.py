"""``services-ai plugin check``: a project is built and its wheel checked, as publishing does.

Every problem names the file, what is wrong and how to fix it; the plugin's code is imported in
a throwaway process (:mod:`plugin_registry.authoring.probe`), never in this one.

(Over 400 lines on purpose: one report is filled step by step, project, wheel, archive rules,
manifest, code, and each step's messages sit beside the check that makes them.)
"""

from __future__ import annotations

import inspect
import json
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from plugin_registry.authoring.archives import ArchiveRefused, extract_safely
from plugin_registry.authoring.build import build
from plugin_registry.authoring.legacy_zip import LegacyZipError, convert_legacy_zip
from plugin_registry.distribution.catalogue import (
    PLATFORM,
    compatibility,
    inspect_wheel,
    platform_owns,
    platform_version,
)
from plugin_registry.distribution.uv import json_from_child
from plugin_registry.errors import RegistryError
from plugin_registry.host.manager import closest_hook
from plugin_registry.registry.manifest import MANIFEST_NAME, normalise_manifest
from services_ai.plugins import hookspecs
from services_ai.plugins.hookspecs import HOOK_NAMES
from services_ai.plugins.markers import ENTRY_POINT_GROUP, PROJECT_NAME
from services_ai.plugins.permissions import HOOK_PERMISSIONS

#: Seconds the check may spend importing a plugin's code (its import runs at every start).
CHECK_TIMEOUT = 60
IMPORT_FIX = "make the module import quickly and without side effects (no work at import time)"


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}; {self.fix}"


@dataclass
class CheckReport:
    name: str = ""
    version: str = ""
    problems: list[Problem] = field(default_factory=list)
    #: Things that work but should change, e.g. an earlier manifest spelling to rename.
    warnings: list[Problem] = field(default_factory=list)

    def add(self, file: str, message: str, fix: str) -> None:
        self.problems.append(Problem(file, message, fix))


def requirement_range() -> str:
    """The ``services-ai`` range a new plugin declares: this minor version up to the next major."""
    version = Version(platform_version())
    upper = f"{version.major + 1}" if version.major else "1"
    return f"{PLATFORM}>={version.major}.{version.minor},<{upper}"


class NotAPluginSource(RegistryError):
    """A path that is neither a plugin project folder, a wheel nor a legacy plugin ZIP."""


def check_path(path: Path) -> CheckReport:
    """Check a plugin project folder, a wheel or a legacy ZIP; every problem says file and fix.

    A project is built into a wheel first and the wheel is checked, so what is checked is what
    would be published (dynamic versions, package data and all); files are named as they are in
    the project.
    """
    with tempfile.TemporaryDirectory(prefix="plugin-check-") as tmp:
        try:
            return checked_wheel(path.resolve() if path.is_dir() else path, Path(tmp))[1]
        except LegacyZipError as exc:
            report = CheckReport()
            report.add(path.name, exc.problem, "then check it again")
        except NotAPluginSource:
            report = CheckReport()
            report.add(
                str(path),
                "not a plugin project folder, a .whl file or a legacy plugin .zip",
                "give one of those",
            )
        return report


def checked_wheel(path: Path, workdir: Path, *, label: str = "") -> tuple[Path, CheckReport]:
    """Turn a project folder, wheel or legacy ZIP into a wheel in ``workdir`` and check it.

    A project that fails to build is a problem of the report; a refused ZIP raises
    LegacyZipError (naming ``label``, default the file's name), any other path NotAPluginSource.
    """
    label = label or path.name
    if path.is_dir():
        report = check_pyproject(path)
        if report.problems:
            return path, report
        try:
            wheel = build(path, workdir)
        except RegistryError as exc:
            report.add("pyproject.toml", str(exc), "fix the project so that it builds")
            return path, report
        return wheel, check_wheel(wheel, project=path, source_root=source_root_of(path))
    if path.suffix == ".zip" and path.is_file():
        wheel = convert_legacy_zip(path, workdir, label=label)
        return wheel, check_wheel(wheel)
    if path.suffix == ".whl" and path.is_file():
        return path, check_wheel(path)
    raise NotAPluginSource(
        f"{label}: not a plugin project folder, a .whl file or a legacy plugin .zip"
    )


def source_root_of(project: Path) -> Path:
    """Where a project keeps its packages: ``src/`` when it has one, else the project folder."""
    return project / "src" if (project / "src").is_dir() else project


def check_pyproject(root: Path) -> CheckReport:
    """What can be told from pyproject.toml alone, with better messages than a failed build."""
    report = CheckReport()
    pyproject = root / "pyproject.toml"
    try:
        data = tomllib.loads(pyproject.read_text())
    except FileNotFoundError:
        report.add("pyproject.toml", "missing", "create one (`services-ai plugin new` writes one)")
        return report
    except tomllib.TOMLDecodeError as exc:
        report.add("pyproject.toml", f"not valid TOML ({exc})", "fix the syntax")
        return report
    project = data.get("project", {})
    dynamic = set(project.get("dynamic", []))
    report.name = canonicalize_name(str(project.get("name", "")))
    if not report.name:
        report.add("pyproject.toml", "[project] has no name", 'add name = "your-plugin"')
    if "version" not in dynamic:
        report.version = str(project.get("version", ""))
        try:
            Version(report.version)
        except InvalidVersion:
            report.add(
                "pyproject.toml", f"version {report.version!r} is not a PEP 440 version",
                'use e.g. version = "0.1.0"',
            )  # fmt: skip
    if "dependencies" not in dynamic:
        _check_requirements(
            report, "pyproject.toml", [str(r) for r in project.get("dependencies", [])]
        )
    if "entry-points" not in dynamic:
        eps = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        if len(eps) != 1:
            what = "no entry point" if not eps else f"{len(eps)} entry points"
            report.add(
                "pyproject.toml",
                f"{what} in group {ENTRY_POINT_GROUP!r}",
                f"declare exactly one: [project.entry-points.{ENTRY_POINT_GROUP}] "
                f'{report.name or "your-plugin"} = "your_plugin.main"',
            )
    return report


def check_wheel(
    wheel: Path, *, project: Path | None = None, source_root: Path | None = None
) -> CheckReport:
    """Check a wheel; with ``project``, name files as they are in that project's sources."""
    report = CheckReport()
    label = wheel.name if project is None else ""
    meta_file = f"{wheel.name} (METADATA)" if project is None else "pyproject.toml"
    try:
        info = inspect_wheel(wheel.read_bytes(), wheel.name)
    except RegistryError as exc:
        report.add(wheel.name, str(exc), "build the project into a wheel")
        return report
    report.name, report.version = info.metadata.name, info.metadata.version
    if platform_owns(report.name):
        report.add(
            meta_file,
            f"the name {report.name!r} is a package of the platform itself; a plugin can never "
            "replace it",
            "choose another distribution name",
        )
        return report
    _check_requirements(report, meta_file, info.requires_dist)
    if not info.is_plugin:
        report.add(
            f"{wheel.name} (entry_points.txt)" if project is None else "pyproject.toml",
            f"no entry point in group {ENTRY_POINT_GROUP!r}",
            "declare one in pyproject.toml and build again",
        )
        return report
    with tempfile.TemporaryDirectory(prefix="plugin-check-") as tmp:
        try:
            files = extract_safely(wheel, Path(tmp))
        except ArchiveRefused as exc:
            report.add(wheel.name, exc.problem, "build the wheel normally")
            return report
        installed = {path: path.removeprefix(_data_root(path)) for path in files}
        packages = {p.split("/")[0] for p in installed.values() if p.endswith("/__init__.py")}
        for path, target in installed.items():
            shown = f"{label}: {path}" if label else path
            top = target.split("/")[0]
            if target.endswith(".pth") and "/" not in target:
                report.add(
                    shown,
                    "a .pth file: Python runs its import lines at every start of every process, "
                    "enabled or not",
                    "remove it from the wheel (a plugin needs no start-up hook)",
                )
            elif "/" not in target or not (top in packages or top.endswith(".dist-info")):
                report.add(
                    shown,
                    "lies outside the plugin's packages and its .dist-info; a plugin installs "
                    "nothing else (no top-level modules, scripts or data files)",
                    "move it into the plugin's package folder",
                )
        if report.problems:
            return report
        meta = {
            "name": info.metadata.name,
            "version": info.metadata.version,
            "author": info.metadata.author,
            "email": info.metadata.author_email,
            "summary": info.metadata.summary,
            "depends": _dependencies(info.requires_dist),
        }
        extracted = Path(tmp).resolve()
        if project is None:
            shown_as = _Shown(extracted, extracted, Path(), f"{label}: ")
        else:
            assert source_root is not None
            shown_as = _Shown(extracted, project, source_root.relative_to(project), "")
        _check_code(report, extracted, info.metadata.entry_point, meta, shown_as)
    return report


def _data_root(path: str) -> str:
    """The folder a wheel installs into site-packages from: its root, or ``*.data/purelib/``."""
    parts = path.split("/")
    if len(parts) > 2 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib"):
        return f"{parts[0]}/{parts[1]}/"
    return ""


@dataclass(frozen=True)
class _Shown:
    """How a file of the extracted wheel is named in a problem: as the project has it."""

    extracted: Path
    project: Path
    source_prefix: Path
    prefix: str

    def __call__(self, path: Path) -> str:
        path = Path(path)
        if path.is_relative_to(self.extracted):
            return self.prefix + str(self.source_prefix / path.relative_to(self.extracted))
        if path.is_relative_to(self.project):
            return self.prefix + str(path.relative_to(self.project))
        return self.prefix + str(path)


def _dependencies(requirements: list[str]) -> list[str]:
    """The requirements other than the platform's own (which the check has installed)."""
    found = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if canonicalize_name(requirement.name) != PLATFORM:
            found.append(line)
    return found


def _check_requirements(report: CheckReport, file: str, requirements: list[str]) -> None:
    ours = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement as exc:
            report.add(file, f"invalid requirement {line!r} ({exc})", "fix its syntax")
            continue
        if canonicalize_name(requirement.name) == PLATFORM:
            ours.append(line)
    if not ours:
        report.add(
            file,
            f"no {PLATFORM} requirement: the catalogue cannot tell which platforms it runs on",
            f'add "{requirement_range()}" to the dependencies',
        )
        return
    compatible, why, _ = compatibility(ours, "")
    if not compatible:
        report.add(file, why, f'widen the range, e.g. "{requirement_range()}"')


def _check_code(
    report: CheckReport, source_root: Path, module: str, meta: dict, shown: _Shown
) -> None:
    """Read the manifest, then import the entry-point module in a throwaway process."""
    package = module.split(".")[0].split(":")[0]
    module_file = source_root / Path(*module.split(":")[0].split("."))
    module_file = module_file.with_suffix(".py") if module_file.with_suffix(".py").exists() else (
        module_file / "__init__.py"
    )  # fmt: skip
    if not module_file.exists():
        report.add(
            shown(source_root / package),
            f"the entry-point module {module!r} does not exist",
            f"create {package}/{module.split('.')[-1]}.py or fix the entry point",
        )
        return
    manifest_file = source_root / package / MANIFEST_NAME
    manifest: dict = {}
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        report.add(shown(manifest_file), "missing", f"ship {MANIFEST_NAME} in package {package!r}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.add(shown(manifest_file), f"not valid JSON ({exc})", "fix the syntax")
    for rename in normalise_manifest(manifest)[1]:
        report.warnings.append(
            Problem(shown(manifest_file), f"{rename.field}: {rename.message}", rename.fix)
        )
    for where, message, fix, *severity in _inspect_in_child(source_root, module, manifest, meta):
        if where == "manifest":
            file = shown(manifest_file)
        elif where.startswith("/"):
            path, _, line = where.rpartition(":")
            file = f"{shown(Path(path))}:{line}" if path else shown(Path(where))
        elif where:
            file = shown.prefix + where
        else:  # the check itself failed (e.g. the import hung): name the entry-point module
            file = shown(module_file)
        found = report.warnings if severity == ["warning"] else report.problems
        found.append(Problem(file, message, fix))


def _inspect_in_child(source_root: Path, module: str, manifest: dict, meta: dict) -> list:
    """Import the module in a child Python; return (file, message, fix) triples."""
    payload = json.dumps(
        {
            "root": str(source_root),
            "module": module,
            "manifest": manifest,
            "meta": meta,
            "depends": meta.get("depends", []),
        }
    )
    # The plugin's code runs in a child with a throwaway home and database and none of this
    # process's environment: an upload checked by the web server must not see production data.
    with tempfile.TemporaryDirectory(prefix="plugin-check-home-") as home:
        try:
            found = json_from_child(
                [str(Path(__file__).with_name("probe.py"))],
                input=payload,
                timeout=CHECK_TIMEOUT,
                inherit=False,
                limited=True,
                env={"SERVICES_AI_HOME": home, "HOME": home},
            )
        except RegistryError as exc:
            return [("", f"importing the plugin's code failed: {exc}", IMPORT_FIX)]
    return [tuple(item) for item in found]


def hook_problems(module_obj: object, manifest: dict) -> list[tuple[str, str, str]]:
    """Compare a plugin module's hook implementations with the hookspecs and its manifest."""
    problems: list[tuple[str, str, str]] = []
    implemented: dict[str, object] = {}
    marker = f"{PROJECT_NAME}_impl"
    for attr in sorted(dir(module_obj)):
        obj = getattr(module_obj, attr, None)
        opts = getattr(obj, marker, None)
        if not callable(obj) or not isinstance(opts, dict):
            continue
        hook = opts.get("specname") or attr
        where = _where(obj)
        if opts.get("hookwrapper") or opts.get("wrapper"):
            problems.append((where, f"{hook}: hook wrappers are not supported", "remove wrapper="))
        if hook not in HOOK_NAMES:
            close = closest_hook(hook)
            fix = f"rename it to {close!r}" if close else f"use one of {', '.join(HOOK_NAMES)}"
            problems.append((where, f"@hookimpl {hook!r} is not a hook", fix))
            continue
        implemented[hook] = obj
        spec_args = list(inspect.signature(getattr(hookspecs, hook)).parameters)
        try:
            impl_args = list(inspect.signature(obj).parameters)
        except (TypeError, ValueError):
            continue
        extra = [arg for arg in impl_args if arg not in spec_args]
        if extra:
            problems.append(
                (
                    where,
                    f"{hook}({', '.join(impl_args)}): {', '.join(map(repr, extra))} is not an "
                    f"argument of the hook {hook}({', '.join(spec_args)})",
                    f"use only the hook's argument names ({', '.join(spec_args)})",
                )
            )
    declared = manifest.get("hook_specs", []) if isinstance(manifest, dict) else []
    declared = declared if isinstance(declared, list) else []
    for hook in sorted(set(implemented) - set(declared)):
        problems.append(
            ("manifest", f"hook_specs misses {hook!r}, which the module implements", "add it")
        )
    for hook in sorted(set(declared) - set(implemented)):
        if isinstance(hook, str) and hook in HOOK_NAMES:
            problems.append(
                (
                    "manifest",
                    f"hook_specs lists {hook!r}, which the entry-point module does not implement",
                    "implement it with @hookimpl or remove it from hook_specs",
                )
            )
    permissions = manifest.get("permissions", []) if isinstance(manifest, dict) else []
    for hook in sorted(implemented):
        needed = HOOK_PERMISSIONS.get(hook)
        if needed and isinstance(permissions, list) and needed not in permissions:
            problems.append(
                (
                    "manifest",
                    f"permissions lacks {needed!r}, without which {hook} is never called",
                    f"add {needed!r} to permissions",
                )
            )
    return problems


def _where(obj: object) -> str:
    try:
        file = inspect.getsourcefile(obj)  # type: ignore[arg-type]
        line = inspect.getsourcelines(obj)[1]  # type: ignore[arg-type]
    except (OSError, TypeError):
        return "(module)"
    return f"{file}:{line}"
