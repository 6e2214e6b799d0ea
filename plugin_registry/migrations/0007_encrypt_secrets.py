"""Encrypt the plaintext values of secret plugin settings (and decrypt them when reversed).

The keys come from SERVICES_AI_SECRET_KEYS or $SERVICES_AI_HOME/secret-settings.key, created
here if there is a secret to encrypt (``plugin_registry.registry.secrets``).
"""

from django.db import migrations

from plugin_registry.registry.secrets import decrypt_all, reencrypt


def encrypt_secrets(apps, schema_editor):
    reencrypt(
        apps.get_model("plugin_registry", "Plugin"),
        apps.get_model("plugin_registry", "PluginSetting"),
        rotate=False,
    )


def decrypt_secrets(apps, schema_editor):
    decrypt_all(
        apps.get_model("plugin_registry", "Plugin"),
        apps.get_model("plugin_registry", "PluginSetting"),
    )


class Migration(migrations.Migration):
    dependencies = [("plugin_registry", "0006_quarantine")]
    operations = [migrations.RunPython(encrypt_secrets, decrypt_secrets)]
