"""The transport: the only package of rabbitbus that imports pika, aiormq or aio-pika.

- ``connections``: pika connections by alias, one per thread, kept alive, with failover
  over ``URLS`` (``endpoints``: the node order, TLS, client properties, connect errors)
  and one view per process of an outage (``outage``);
- ``aio_connections``: the same for an event loop (aio-pika, over aiormq);
- ``confirms``: a pika channel in confirm mode, publishes awaited by delivery tag;
- ``errors``: the drivers' exceptions, grouped by what the rest of rabbitbus does about them;
- ``frames``, ``amqp_tap``: the hand-read fast paths (AMQP frames marshalled and parsed
  by hand; deliveries taken off an aiormq socket before aiormq reads them);
- ``refusals``: what the broker said when it refused a login, a vhost or a permission;
- ``driver_logs``: driver log records a network fault makes noisy, demoted to DEBUG.

Nothing here imports Django models or the code above it (publishing, consuming, rpc):
a driver upgrade that breaks something breaks it here.
"""
