"""A WSGI-only server for the browser test: ``python -m tests.wsgi_server PORT``."""

import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIServer, make_server

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


if __name__ == "__main__":
    app = StaticFilesHandler(get_wsgi_application())
    make_server(
        "127.0.0.1", int(sys.argv[1]), app, server_class=ThreadingWSGIServer
    ).serve_forever()
