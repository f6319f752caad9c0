"""Views that call the Fibonacci procedure over RabbitMQ, sync and async."""

from django.http import HttpRequest, JsonResponse

from rabbitbus import rpc
from rabbitbus.exceptions import RemoteError, RpcError


def fib_sync(request: HttpRequest, n: int) -> JsonResponse:
    try:
        return JsonResponse({"n": n, "fib": rpc.call("fib", n, timeout=5)})
    except RemoteError as exc:
        return JsonResponse({"error": exc.type, "message": exc.message}, status=400)
    except RpcError as exc:
        return JsonResponse({"error": type(exc).__name__}, status=503)


async def fib_async(request: HttpRequest, n: int) -> JsonResponse:
    try:
        return JsonResponse({"n": n, "fib": await rpc.acall("fib", n, timeout=5)})
    except RemoteError as exc:
        return JsonResponse({"error": exc.type, "message": exc.message}, status=400)
    except RpcError as exc:
        return JsonResponse({"error": type(exc).__name__}, status=503)
