"""The demo shop's ASGI app with static files served, for the browser test's daphne."""

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from demo_shop.asgi import application as shop_application

application = ASGIStaticFilesHandler(shop_application)
