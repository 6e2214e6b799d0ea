from django.db import migrations


def create_generation_row(apps, schema_editor):
    RegistryGeneration = apps.get_model("plugin_registry", "RegistryGeneration")
    RegistryGeneration.objects.get_or_create(pk=1, defaults={"generation": 0})


class Migration(migrations.Migration):
    dependencies = [("plugin_registry", "0001_initial")]
    operations = [migrations.RunPython(create_generation_row, migrations.RunPython.noop)]
