"""The RabbitMQ dashboard and the task results in the Django admin.

``Dashboard`` has no table: its ModelAdmin only contributes views (see
:mod:`rabbitbus.monitoring.admin_views`) and the permissions that guard them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import URLPattern, path
from django.utils.html import format_html

from rabbitbus.models import Dashboard, TaskRecord
from rabbitbus.monitoring import admin_views


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rabbitbus.view_dashboard")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("rabbitbus.view_dashboard")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        prefix = "rabbitbus_dashboard"
        return [
            path("", view(admin_views.dashboard), name=f"{prefix}_changelist"),
            path("data/", view(admin_views.data), name=f"{prefix}_data"),
            path("topology/", view(admin_views.topology), name=f"{prefix}_topology"),
            path("dlq/<str:queue>/", view(admin_views.browse), name=f"{prefix}_dlq"),
            *(
                path(
                    f"dlq/<str:queue>/{action}/",
                    view(admin_views.act),
                    {"action": action},
                    name=f"{prefix}_dlq_{action}",
                )
                for action in admin_views.ACTIONS
            ),
        ]


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """django.tasks results (rabbitbus.tasks): read-only; rows go by ``rabbit_tasks --prune``."""

    list_display = (
        "id", "task_path", "queue_name", "status", "attempts", "enqueued_at", "finished_at",
    )  # fmt: skip
    list_filter = ("status", "task_path", "queue_name")
    search_fields = ("id", "task_path")
    date_hierarchy = "enqueued_at"
    ordering = ("-enqueued_at",)
    exclude = ("traceback",)
    readonly_fields = ("error",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="traceback")
    def error(self, obj: TaskRecord) -> str:
        return format_html("<pre>{}</pre>", obj.traceback) if obj.traceback else "-"
