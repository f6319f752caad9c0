"""Views behind the admin dashboard: overview, JSON data, topology, dead-letter browse and actions.

Every view runs inside ``AdminSite.admin_view`` (staff login, CSRF). Reading
needs ``rabbitbus.view_dashboard``; each destructive action needs its own
permission, is POST only, is confirmed on a page that says what will happen,
and is written to the admin log with its count.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from rabbitbus import monitoring
from rabbitbus.exceptions import QueueNotFound, RabbitBusError
from rabbitbus.models import Dashboard
from rabbitbus.monitoring import deadletters, task_monitoring, topology_graph

#: action -> (permission, past tense, what the confirm page says)
ACTIONS = {
    "replay": (
        "rabbitbus.replay_deadletter",
        "Replayed",
        "published again to where they came from",
    ),
    "discard": ("rabbitbus.discard_deadletter", "Discarded", "deleted for good"),
    "purge": ("rabbitbus.purge_queue", "Purged", "deleted for good: the whole queue is emptied"),
}
BROWSE_LIMIT = 100


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    from django.contrib import admin

    return {**admin.site.each_context(request), "title": title, "opts": Dashboard._meta, **extra}


def _known_dlq(queue: str) -> None:
    try:
        deadletters.check_queue(queue)
    except QueueNotFound as exc:
        raise Http404("No such dead-letter queue.") from exc


def dashboard(request: HttpRequest) -> HttpResponse:
    """The overview page; it refreshes itself over the WebSocket or by polling."""
    _require(request, "rabbitbus.view_dashboard")
    snapshot = monitoring.overview()
    context = _context(
        request, "RabbitMQ", snapshot=snapshot, stale=monitoring.options().stale_after,
        task_changelist=_task_changelist(request), task_statuses=task_monitoring.STATUSES,
    )  # fmt: skip
    return TemplateResponse(request, "admin/rabbitbus/dashboard.html", context)


def _task_changelist(request: HttpRequest) -> str:
    """The task results' admin list, if this user may see it ("" otherwise)."""
    if not request.user.has_perm("rabbitbus.view_taskrecord"):
        return ""
    return reverse("admin:rabbitbus_taskrecord_changelist")


def data(request: HttpRequest) -> JsonResponse:
    """The overview as JSON, for pages that cannot use the WebSocket."""
    _require(request, "rabbitbus.view_dashboard")
    return JsonResponse(monitoring.as_json(monitoring.overview()))


def topology(request: HttpRequest) -> HttpResponse:
    """Exchanges -> bindings -> queues -> consumers and procedures, drawn by topology.js."""
    _require(request, "rabbitbus.view_dashboard")
    context = _context(request, "RabbitMQ topology", graph=topology_graph.current())
    return TemplateResponse(request, "admin/rabbitbus/topology.html", context)


def browse(request: HttpRequest, queue: str) -> HttpResponse:
    """The head of a dead-letter queue, read without removing anything."""
    _require(request, "rabbitbus.view_dashboard")
    _known_dlq(queue)
    try:
        letters = deadletters.browse(queue, BROWSE_LIMIT)
    except QueueNotFound as exc:
        raise Http404("No such dead-letter queue.") from exc
    context = _context(request, f"Dead letters in {queue}", queue=queue, letters=letters)
    return TemplateResponse(request, "admin/rabbitbus/deadletters.html", context)


@require_POST
def act(request: HttpRequest, queue: str, action: str) -> HttpResponse:
    """Replay, discard or purge: a confirm page first, then the action when confirmed."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    permission, done, effect = ACTIONS[action]
    _require(request, permission)
    _known_dlq(queue)
    ids = None if action == "purge" or request.POST.get("all") else request.POST.getlist("ids")
    if ids is not None and not ids:
        messages.warning(request, "Select at least one message.")
        return redirect("admin:rabbitbus_dashboard_dlq", queue=queue)
    if request.POST.get("confirm") != "yes":
        context = _context(
            request, f"{action.capitalize()} dead letters", queue=queue, action=action,
            ids=ids, effect=effect,
        )  # fmt: skip
        return TemplateResponse(request, "admin/rabbitbus/confirm.html", context)
    return _perform(request, queue, action, ids, done)


def _perform(
    request: HttpRequest, queue: str, action: str, ids: list[str] | None, done: str
) -> HttpResponse:
    try:
        if action == "purge":
            count = deadletters.purge(queue)
        else:
            run = deadletters.replay if action == "replay" else deadletters.discard
            count = run(queue, ids)
    except QueueNotFound as exc:
        raise Http404("No such dead-letter queue.") from exc
    except RabbitBusError as exc:
        messages.error(request, f"{action.capitalize()} failed: {type(exc).__name__}: {exc}")
        return redirect("admin:rabbitbus_dashboard_dlq", queue=queue)
    summary = f"{done} {count} message(s) in {queue}"
    _log(request, queue, summary)
    messages.success(request, summary + ".")
    return redirect("admin:rabbitbus_dashboard_dlq", queue=queue)


def _log(request: HttpRequest, queue: str, summary: str) -> None:
    LogEntry.objects.create(
        user_id=request.user.pk,  # type: ignore[misc] # admin_view ensures a user
        content_type=ContentType.objects.get_for_model(Dashboard, for_concrete_model=False),
        object_id=queue,
        object_repr=queue[:200],
        action_flag=CHANGE,
        change_message=summary,
    )
