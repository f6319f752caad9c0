"""ASGI entry point of the demo shop: HTTP through Django, WebSockets through Channels."""

import os

from channels.routing import ProtocolTypeRouter, URLRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_shop.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs the apps loaded
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from demo_shop.orders.live import websocket_urlpatterns as shop_websockets  # noqa: E402
from rabbitbus.live import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns + shop_websockets))
        ),
    }
)
