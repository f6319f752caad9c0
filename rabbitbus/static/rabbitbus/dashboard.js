// Live updates of the rabbitbus dashboard: WebSocket first (Channels under ASGI),
// polling the JSON endpoint when the socket cannot open (a WSGI-only site).
// Everything is written with textContent: nothing from the broker becomes HTML.
(function () {
  "use strict";
  // Not "rabbitbus-dashboard": the admin sidebar already uses that id for the model row.
  var root = document.getElementById("rb-dashboard");
  if (!root) { return; }
  var live = document.getElementById("rb-live");
  var pollTimer = null;

  function show(value, rate) {
    if (value === null || value === undefined) { return "-"; }
    return rate ? Number(value).toFixed(1) : String(value);
  }

  function updateQueues(queues) {
    var rows = root.querySelectorAll("tr[data-queue]");
    queues.forEach(function (queue) {
      rows.forEach(function (row) {
        if (row.dataset.queue !== queue.name) { return; }
        row.querySelectorAll("[data-field]").forEach(function (cell) {
          var field = cell.dataset.field;
          cell.textContent = show(queue[field], field.indexOf("rate") >= 0);
        });
      });
    });
  }

  function updateOverview(data) {
    updateQueues(data.queues || []);
    var broker = document.getElementById("rb-broker");
    broker.textContent = data.reachable
      ? "Broker reachable, RabbitMQ " + data.version + " (queues by " + data.source + ")."
      : "Broker unreachable: " + data.error;
    document.getElementById("rb-note").textContent = data.note || "";
    var outbox = document.getElementById("rb-outbox");
    ["pending", "failing", "oldest_age"].forEach(function (field) {
      var cell = outbox.querySelector('[data-field="' + field + '"]');
      var value = (data.outbox || {})[field];
      cell.textContent = field === "oldest_age" && value !== null && value !== undefined
        ? String(Math.round(value)) : show(value, false);
    });
    root.dataset.updated = String(Date.now());
  }

  function addEvent(kind, data) {
    var list = document.getElementById("rb-events");
    var item = document.createElement("li");
    item.textContent = new Date().toLocaleTimeString() + " " + kind + " " + JSON.stringify(data);
    list.insertBefore(item, list.firstChild);
    while (list.children.length > 50) { list.removeChild(list.lastChild); }
  }

  function poll() {
    if (pollTimer) { return; }
    live.textContent = "polling";
    pollTimer = window.setInterval(function () {
      fetch(root.dataset.jsonUrl, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { updateOverview(data); } })
        .catch(function () { live.textContent = "polling (last request failed)"; });
    }, 2000);
  }

  function connect() {
    if (!("WebSocket" in window)) { poll(); return; }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + root.dataset.wsPath);
    var opened = false;
    socket.onopen = function () { opened = true; live.textContent = "WebSocket"; };
    socket.onmessage = function (message) {
      var payload = JSON.parse(message.data);
      if (payload.type === "overview") { updateOverview(payload.data); }
      else if (payload.type === "event") { addEvent(payload.kind, payload.data); }
    };
    socket.onclose = function () {
      if (opened) { live.textContent = "reconnecting"; window.setTimeout(connect, 2000); }
      else { poll(); }
    };
  }

  connect();
})();
