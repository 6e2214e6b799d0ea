"""Durable event delivery: events recorded with the change, delivered per plugin by workers.

The request path only enqueues one fan-out task carrying the event's snapshots, inside the
transaction that saved the lead or booking: one row, whatever the number of plugins, and a
rolled-back save leaves nothing behind. A worker then records the
:class:`~services_ai.events.models.Event`, creates one
:class:`~services_ai.events.models.Delivery` per subscribed plugin and runs each on its own, with
retries, a time budget, and a record of every outcome.

The signal handlers of the domain apps call :func:`services_ai.events.emit.record_event`.
"""
