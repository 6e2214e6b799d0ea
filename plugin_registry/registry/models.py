from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Plugin(models.Model):
    """The registry's mirror of one installed plugin distribution."""

    name = models.CharField(
        _("name"), max_length=200, unique=True, help_text=_("normalised distribution name")
    )
    version = models.CharField(_("version"), max_length=100)
    summary = models.CharField(_("summary"), max_length=500, blank=True)
    author = models.CharField(_("author"), max_length=200, blank=True)
    author_email = models.CharField(_("author email"), max_length=200, blank=True)
    entry_point = models.CharField(_("entry point"), max_length=300, blank=True)
    manifest = models.JSONField(_("manifest"), default=dict, blank=True)
    manifest_error = models.TextField(_("manifest error"), blank=True)
    installed = models.BooleanField(_("installed"), default=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    load_error = models.TextField(_("last load error"), blank=True)
    quarantined_at = models.DateTimeField(
        _("quarantined at"),
        null=True,
        blank=True,
        help_text=_("set when its code crashed or stalled processes repeatedly; enabling lifts it"),
    )
    quarantine_reason = models.TextField(_("quarantined because"), blank=True)
    strikes_since = models.DateTimeField(
        _("strikes counted since"),
        null=True,
        blank=True,
        help_text=_("crashes and stalls before this (the last lift) no longer count"),
    )
    installed_hook_pending = models.BooleanField(
        _("plugin_installed not called yet"),
        default=False,
        help_text=_("installed or upgraded while disabled: the hook runs at the next enable"),
    )
    created_at = models.DateTimeField(_("first seen"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("plugin")
        verbose_name_plural = _("plugins")
        ordering = ["name"]
        permissions = [("manage_plugins", _("Can install, configure and grant plugins"))]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def setting_specs(self) -> list[dict]:
        return list(self.manifest.get("settings", [])) if not self.manifest_error else []

    @property
    def hooks(self) -> list[str]:
        return list(self.manifest.get("hook_specs", []))


class PluginPermission(models.Model):
    """A permission a plugin requests; nothing is granted until an admin consents."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="permissions")
    name = models.CharField(_("permission"), max_length=100)
    requested = models.BooleanField(_("requested by the installed version"), default=True)
    granted = models.BooleanField(_("granted"), default=False)
    changed_at = models.DateTimeField(_("changed"), auto_now=True)
    changed_by = models.CharField(_("changed by"), max_length=150, blank=True)

    class Meta:
        verbose_name = _("plugin permission")
        verbose_name_plural = _("plugin permissions")
        constraints = [
            models.UniqueConstraint(fields=["plugin", "name"], name="unique_plugin_permission")
        ]
        ordering = ["plugin__name", "name"]

    def __str__(self) -> str:
        state = "granted" if self.granted else "not granted"
        return f"{self.plugin.name}: {self.name} ({state})"


class PluginSetting(models.Model):
    """A configured value of one setting declared in a plugin's manifest."""

    plugin = models.ForeignKey(Plugin, on_delete=models.CASCADE, related_name="settings")
    key = models.CharField(_("key"), max_length=100)
    value = models.JSONField(_("value"), null=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("plugin setting")
        verbose_name_plural = _("plugin settings")
        constraints = [
            models.UniqueConstraint(fields=["plugin", "key"], name="unique_plugin_setting")
        ]

    def __str__(self) -> str:
        return f"{self.plugin.name}.{self.key}"


class PluginData(models.Model):
    """A plugin's private key-value store (``services_ai.plugins.api.get_data``)."""

    plugin_name = models.CharField(_("plugin"), max_length=200, db_index=True)
    key = models.CharField(_("key"), max_length=200)
    value = models.JSONField(_("value"), null=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("plugin data")
        verbose_name_plural = _("plugin data")
        constraints = [
            models.UniqueConstraint(fields=["plugin_name", "key"], name="unique_plugin_data_key")
        ]

    def __str__(self) -> str:
        return f"{self.plugin_name}:{self.key}"


class PluginFailure(models.Model):
    """One exception raised by a plugin's hook (or its import), with the traceback."""

    plugin_name = models.CharField(_("plugin"), max_length=200, db_index=True)
    hook = models.CharField(_("hook"), max_length=100)
    message = models.TextField(_("message"))
    traceback = models.TextField(_("traceback"), blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("plugin failure")
        verbose_name_plural = _("plugin failures")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plugin_name}.{self.hook}: {self.message[:80]}"


class RegistryGeneration(models.Model):
    """A single row whose counter grows with every enable, disable, grant and revoke.

    Every process compares it with the generation its host was built from at the first hook
    call of each request and task (``registry.generation.check``), so changes take effect
    everywhere without a restart.
    """

    generation = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("registry generation")

    def __str__(self) -> str:
        return f"generation {self.generation}"


class CatalogueVersion(models.Model):
    """One version of one project on the plugin index, mirrored with what it would ask for."""

    name = models.CharField(_("name"), max_length=200, db_index=True)
    version = models.CharField(_("version"), max_length=100)
    filename = models.CharField(_("wheel"), max_length=300)
    sha256 = models.CharField(_("sha256"), max_length=64)
    is_plugin = models.BooleanField(_("is a plugin"), default=True)
    available = models.BooleanField(_("on the index"), default=True)
    summary = models.CharField(_("summary"), max_length=500, blank=True)
    author = models.CharField(_("author"), max_length=200, blank=True)
    requires_dist = models.JSONField(_("requirements"), default=list, blank=True)
    requires_python = models.CharField(_("requires Python"), max_length=100, blank=True)
    requires_platform = models.CharField(_("requires services-ai"), max_length=200, blank=True)
    compatible = models.BooleanField(_("compatible"), default=True)
    compatibility = models.CharField(_("compatibility"), max_length=500, blank=True)
    manifest = models.JSONField(_("manifest"), default=dict, blank=True)
    manifest_error = models.TextField(_("manifest error"), blank=True)
    withdrawn = models.BooleanField(_("withdrawn"), default=False)
    withdrawn_reason = models.CharField(_("withdrawn because"), max_length=500, blank=True)
    synced_at = models.DateTimeField(_("synced"), auto_now=True)

    # Why it cannot be installed; set by the console's catalogue page for its template.
    verdict: str

    class Meta:
        verbose_name = _("catalogue version")
        verbose_name_plural = _("catalogue")
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_catalogue_version")
        ]
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def permissions(self) -> list[str]:
        return list(self.manifest.get("permissions", []))

    @property
    def settings(self) -> list[dict]:
        return list(self.manifest.get("settings", []))

    @property
    def installable(self) -> bool:
        return self.available and self.compatible and not self.withdrawn and not self.manifest_error


class EnvironmentGeneration(models.Model):
    """One build of the managed plugin environment: the requested plugins and their lock.

    The active generation is the desired state: every node reconciles its environment to it.
    """

    class Status(models.TextChoices):
        BUILDING = "building", _("building")
        ACTIVE = "active", _("active")
        INACTIVE = "inactive", _("inactive")
        FAILED = "failed", _("failed")

    number = models.PositiveIntegerField(_("generation"), unique=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices)
    action = models.CharField(_("change"), max_length=500)
    requested = models.JSONField(_("requested plugins"), default=dict)  # name -> version
    lock = models.TextField(_("plugins.lock"), blank=True)
    error = models.TextField(_("error"), blank=True)
    actor = models.CharField(_("by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("built"), auto_now_add=True)
    activated_at = models.DateTimeField(_("last activated"), null=True, blank=True)

    class Meta:
        verbose_name = _("environment generation")
        verbose_name_plural = _("environment generations")
        ordering = ["-number"]

    def __str__(self) -> str:
        return f"generation {self.number} ({self.status})"


class AuditEntry(models.Model):
    """One admin action on the plugin platform: who, what, when, before and after."""

    at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)
    actor = models.CharField(_("by"), max_length=150)
    action = models.CharField(_("action"), max_length=50, db_index=True)
    target = models.CharField(_("target"), max_length=300, blank=True)
    before = models.JSONField(_("before"), null=True, blank=True)
    after = models.JSONField(_("after"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.target}"


class Operation(models.Model):
    """A long change started from the console (install, upgrade, uninstall, rollback, refresh).

    The web process records it and enqueues one task (queue ``operations``); a worker runs it,
    writing its progress to ``log`` and its outcome to ``status`` and ``result``, so any web
    process can show it. The worker beats ``heartbeat_at`` while it works; the worker
    supervisor's reaper fails an operation whose task failed or vanished or whose worker fell
    silent (``plugin_registry.registry.operations``).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")

    kind = models.CharField(_("kind"), max_length=30)
    description = models.CharField(_("description"), max_length=300)
    actor = models.CharField(_("by"), max_length=150)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.QUEUED
    )
    log = models.TextField(_("progress"), blank=True)
    result = models.TextField(_("result"), blank=True)
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    task_id = models.CharField(
        _("task"), max_length=64, blank=True, db_index=True, help_text=_("the queued task")
    )
    worker_id = models.CharField(_("worker"), max_length=64, blank=True)
    host = models.CharField(_("host"), max_length=255, blank=True)
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    picked_up_at = models.DateTimeField(_("picked up"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), null=True, blank=True)

    class Meta:
        verbose_name = _("operation")
        verbose_name_plural = _("operations")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.description} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class NodeHeartbeat(models.Model):
    """What one kind of process on one node last said: which plugin environment it runs.

    The worker supervisor and the web processes of every node write theirs every few seconds,
    so ``services-ai nodes`` and the console show each node, its generation and any skew.
    """

    node = models.CharField(_("node"), max_length=200)
    role = models.CharField(_("role"), max_length=20, help_text=_("web or worker"))
    pid = models.PositiveIntegerField(_("process"), default=0)
    generation = models.PositiveIntegerField(
        _("generation it runs"), null=True, blank=True, help_text=_("none: no plugins installed")
    )
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(_("last heartbeat"))

    class Meta:
        verbose_name = _("node heartbeat")
        verbose_name_plural = _("node heartbeats")
        constraints = [
            models.UniqueConstraint(fields=["node", "role"], name="one_heartbeat_per_node_role")
        ]
        ordering = ["node", "role"]

    def __str__(self) -> str:
        return f"{self.node} ({self.role})"
