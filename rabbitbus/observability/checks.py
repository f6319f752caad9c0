"""System checks of ``RABBITBUS["METRICS"]`` (ids E080-E083). No I/O."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from rabbitbus.conf import MetricsSettings, is_int, keys
from rabbitbus.observability import metrics

METRICS_KEYS = keys(MetricsSettings)
WHERE = "RABBITBUS['METRICS']"


def _error(id_: str, msg: str, hint: str) -> Error:
    return Error(msg, hint=hint, id=f"rabbitbus.{id_}")


def metrics_errors(raw: Any) -> list[CheckMessage]:
    """Problems with ``RABBITBUS['METRICS']`` (None: metrics off)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [_error("E080", f"{WHERE} must be a dict or None.", "e.g. {'PORT': 9100}")]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - METRICS_KEYS)
    if unknown:
        hint = f"Valid keys: {', '.join(sorted(METRICS_KEYS))}."
        errors.append(_error("E081", f"Unknown key(s) {', '.join(unknown)} in {WHERE}.", hint))
    port = raw.get("PORT")
    if port is not None and (not is_int(port) or not 0 < port < 65536):
        errors.append(_error("E082", f"{WHERE}['PORT'] must be a port number or None.", "9100"))
    if not isinstance(raw.get("ADDR", ""), str):
        errors.append(_error("E082", f"{WHERE}['ADDR'] must be a string.", "e.g. '127.0.0.1'"))
    if not metrics.available():
        hint = "pip install 'rabbitbus[metrics]', or set METRICS to None."
        errors.append(_error("E083", f"{WHERE} is set but prometheus_client is missing.", hint))
    return errors


@register("rabbitbus")
def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The metrics settings, checked without any I/O."""
    from django.conf import settings

    raw = getattr(settings, "RABBITBUS", {})
    return metrics_errors(raw.get("METRICS")) if isinstance(raw, dict) else []
