"""``/metrics`` for web processes: route :func:`metrics` in your URLconf.

Under several web processes (gunicorn workers, uvicorn workers) set
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before they start: each
process then writes its values there and this view sums them (prometheus_client's
multiprocess mode, https://prometheus.github.io/client_python/multiprocess/).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from rabbitbus.observability import metrics as metrics_module


def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of this process's (or every process's) metrics;
    404 while metrics are off. Protect it as you would any internal endpoint."""
    if not metrics_module.on:
        return HttpResponse("Metrics are off (RABBITBUS['METRICS']).", status=404)
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    body = generate_latest(metrics_module.registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
