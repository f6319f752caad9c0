"""Observability: Prometheus metrics (:mod:`.metrics`) and OpenTelemetry traces.

Both are optional: ``prometheus-client`` and ``opentelemetry-api`` are extras
(``pip install rabbitbus[metrics]``, ``rabbitbus[traces]``), and rabbitbus imports
and works without them. Off unless configured; see docs/observability.md.
"""


def setup() -> None:
    """The app's ``ready()``: register the checks, follow settings; no I/O."""
    from rabbitbus.observability import checks, metrics  # noqa: F401 - registers checks

    metrics.connect_settings_signal()
    metrics.configure()
