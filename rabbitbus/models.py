"""Database state of rabbitbus: the outbox, the idempotent inbox, worker heartbeats."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A message written in the same transaction as the change that caused it.

    The relay publishes pending rows with confirms and marks them sent in a
    second transaction, so a committed change always produces its message.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    connection = models.CharField(max_length=64, default="default")
    exchange = models.CharField(max_length=255)
    routing_key = models.CharField(max_length=255)
    message_id = models.CharField(max_length=64, unique=True)
    body = models.BinaryField()
    content_type = models.CharField(max_length=100)
    headers = models.JSONField(default=dict, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    aggregate = models.CharField(
        max_length=255, blank=True, default="", help_text="Messages with one key keep their order."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.CharField(max_length=200, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "id"], name="rabbitbus_outbox_status_id"),
            models.Index(fields=["status", "sent_at"], name="rabbitbus_outbox_status_sent"),
            # The relay's "is there an older pending row of this aggregate?" lookup.
            models.Index(
                fields=["aggregate", "id"],
                condition=models.Q(status="pending"),
                name="rabbitbus_outbox_pending_agg",
            ),
        ]
        verbose_name = "outbox message"

    def __str__(self) -> str:
        return f"{self.exchange}:{self.routing_key} {self.message_id} ({self.status})"


class ProcessedMessage(models.Model):
    """The idempotent inbox: one row per message a consumer has applied."""

    consumer = models.CharField(max_length=200)
    message_id = models.CharField(max_length=255)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["consumer", "message_id"], name="rabbitbus_processed_once"
            )
        ]
        verbose_name = "processed message"

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"


class WorkerHeartbeat(models.Model):
    """What each running worker last said about itself."""

    worker_id = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    kind = models.CharField(max_length=32, default="consumer")
    consumers = models.JSONField(default=list, blank=True)
    processed = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    retried = models.PositiveBigIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "worker"

    def __str__(self) -> str:
        return self.worker_id


class Dashboard(models.Model):
    """No table: the admin's monitoring dashboard and the permissions that guard it."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", "Can view the RabbitMQ dashboard"),
            ("replay_deadletter", "Can replay dead-lettered messages"),
            ("discard_deadletter", "Can discard dead-lettered messages"),
            ("purge_queue", "Can purge a dead-letter queue"),
        ]
        verbose_name = "RabbitMQ dashboard"
        verbose_name_plural = "RabbitMQ dashboard"

    def __str__(self) -> str:
        return "RabbitMQ dashboard"


class TaskRecord(models.Model):
    """The result of one ``django.tasks`` task run by :mod:`rabbitbus.tasks`.

    Written at enqueue (``READY``, unless ``RECORD_ENQUEUED`` is off) and by the
    worker, in batches (``RUNNING``, then ``SUCCESSFUL`` or ``FAILED``).
    """

    class Status(models.TextChoices):  # the values of django.tasks.TaskResultStatus
        READY = "READY"
        RUNNING = "RUNNING"
        FAILED = "FAILED"
        SUCCESSFUL = "SUCCESSFUL"

    id = models.CharField(max_length=64, primary_key=True)
    backend = models.CharField(max_length=64, default="default")
    task_path = models.CharField("task", max_length=255, db_index=True)
    queue_name = models.CharField("queue", max_length=255)
    priority = models.IntegerField(default=0)
    takes_context = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.READY)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    run_after = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker_ids = models.JSONField(default=list, blank=True)
    return_value = models.JSONField(null=True, blank=True)
    exception_class = models.CharField(max_length=255, blank=True, default="")
    traceback = models.TextField(blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["status", "finished_at"], name="rabbitbus_task_status_fin"),
            models.Index(fields=["queue_name", "status"], name="rabbitbus_task_queue_status"),
        ]
        verbose_name = "task result"

    def __str__(self) -> str:
        return f"{self.task_path} {self.id} ({self.status})"
