"""Views that call the Fibonacci procedure over RabbitMQ, sync and async.

Anyone may ask, but only staff may ask for more than :data:`ANONYMOUS_MAX_N`:
fib(35) takes seconds of CPU, fib(30) a fraction of one. The procedure runs
two at a time at most (``demo_shop/tutorial/rabbit.py``), whoever asks.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse

from rabbitbus import rpc
from rabbitbus.exceptions import RemoteError, RpcError

ANONYMOUS_MAX_N = 30
TIMEOUT = 5


def _refusal(user: Any, n: int) -> JsonResponse | None:
    """A 403 for a caller who may not ask for fib(n), or None."""
    if n <= ANONYMOUS_MAX_N or (user.is_active and user.is_staff):
        return None
    message = f"n must be at most {ANONYMOUS_MAX_N} (staff may ask for more)"
    return JsonResponse({"error": "PermissionDenied", "message": message}, status=403)


def _failure(exc: RpcError) -> JsonResponse:
    """The procedure's error (400), or that nobody answered (503)."""
    if isinstance(exc, RemoteError):
        return JsonResponse({"error": exc.type, "message": exc.message}, status=400)
    return JsonResponse({"error": type(exc).__name__}, status=503)


def fib_sync(request: HttpRequest, n: int) -> JsonResponse:
    refused = _refusal(request.user, n)
    if refused:
        return refused
    try:
        return JsonResponse({"n": n, "fib": rpc.call("fib", n, timeout=TIMEOUT)})
    except RpcError as exc:
        return _failure(exc)


async def fib_async(request: HttpRequest, n: int) -> JsonResponse:
    refused = _refusal(await request.auser(), n)
    if refused:
        return refused
    try:
        return JsonResponse({"n": n, "fib": await rpc.acall("fib", n, timeout=TIMEOUT)})
    except RpcError as exc:
        return _failure(exc)
