"""Base classes shared by the domain models."""

from __future__ import annotations

from django.db import models, transaction


class EmitsEvents(models.Model):
    """A model whose saves emit plugin events (recorded by its ``post_save`` receivers).

    The row and its event are saved in one transaction: both or neither.
    """

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
