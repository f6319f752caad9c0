"""The transport: the only package of rabbitbus that imports pika, aiormq or aio-pika.

- ``connections``: pika connections by alias, one per thread, kept alive, with failover
  over ``URLS`` (``endpoints``: the node order, TLS, client properties, connect errors)
  and one view per process of an outage (``outage``);
- ``opening``: how every async connection is opened (aio-pika, over aiormq): robust ones
  for request-side code, plain ones for the runtime, which owns their recovery;
- ``aio_connections``: robust connections by alias, one per event loop, and their
  publishing channels; ``aio``: a runtime's connection, its aiormq channels and deliveries;
- ``confirms``: a pika channel in confirm mode, publishes awaited by delivery tag;
- ``errors``: the drivers' exceptions, grouped by what the rest of rabbitbus does about them;
- ``frames``, ``amqp_tap``: the hand-read fast paths (AMQP frames marshalled and parsed
  by hand; deliveries taken off an aiormq socket before aiormq reads them);
- ``refusals``: what the broker said when it refused a login, a vhost or a permission;
- ``driver_logs``: driver log records a network fault makes noisy, demoted to DEBUG.

Nothing here imports Django models or the code above it (publishing, consuming, rpc):
a driver upgrade that breaks something breaks it here.
"""
