// Live updates of the rabbitbus dashboard: WebSocket first (Channels under ASGI),
// polling the JSON endpoint when the socket cannot open (a WSGI-only site).
// Everything is written with textContent: nothing from the broker becomes HTML.
// Charts (charts.js) draw the broker's own samples when the snapshot carries them
// (management API), else what this page has seen since it opened.
(function () {
  "use strict";
  // Not "rabbitbus-dashboard": the admin sidebar already uses that id for the model row.
  var root = document.getElementById("rb-dashboard");
  if (!root) { return; }
  var live = document.getElementById("rb-live");
  var pollTimer = null;
  var WINDOW_MS = 5 * 60 * 1000;
  var seen = {};  // queue name -> {depth: [...], rates: [...]} when the broker has no samples

  function setLive(text, state) {
    live.textContent = text;
    live.dataset.state = state;
  }

  function known(value) { return value === null || value === undefined ? NaN : value; }

  function remember(queue, now) {
    var own = seen[queue.name] = seen[queue.name] || {depth: [], rates: []};
    own.depth.push([now, known(queue.ready), known(queue.unacked)]);
    if (queue.publish_rate !== null && queue.publish_rate !== undefined) {
      own.rates.push([now, queue.publish_rate, queue.deliver_rate || 0]);
    }
    ["depth", "rates"].forEach(function (key) {
      own[key] = own[key].filter(function (p) { return p[0] >= now - WINDOW_MS; });
    });
    return own;
  }

  // The broker's samples span the whole window; what the page saw spans since it opened.
  function windowOf(points, now, sampled) {
    if (sampled || !points.length) { return WINDOW_MS; }
    return Math.min(WINDOW_MS, Math.max(60 * 1000, now - points[0][0]));
  }

  function drawCharts(row, queue, now) {
    if (!queue.exists) { return; }
    var history = queue.history || remember(queue, now);
    var charts = {depth: ["rb-ready", "rb-unacked"], rates: ["rb-publish", "rb-deliver"]};
    Object.keys(charts).forEach(function (key) {
      var svg = row.querySelector('svg[data-chart="' + key + '"]');
      var points = history[key];
      if (svg) { window.rabbitbusCharts.draw(svg, points, charts[key], windowOf(points, now, queue.history)); }
    });
  }

  function updateTotals(queues, workers) {
    var sums = {ready: 0, unacked: 0, publish_rate: 0, deliver_rate: 0, dead_letters: 0};
    queues.forEach(function (q) {
      if (q.dead_letter) { sums.dead_letters += q.ready || 0; return; }
      ["ready", "unacked", "publish_rate", "deliver_rate"].forEach(function (key) {
        sums[key] += q[key] || 0;
      });
    });
    root.querySelectorAll("[data-total]").forEach(function (cell) {
      var key = cell.dataset.total;
      cell.textContent = key === "workers" ? String(workers.length)
        : show(sums[key], key.indexOf("rate") >= 0);
    });
  }

  function cell(row, value, numeric) {
    var td = row.insertCell();
    td.textContent = value;
    if (numeric) { td.className = "rb-num"; }
    return td;
  }

  function updateWorkers(workers) {
    var body = document.querySelector("#rb-workers tbody");
    if (!workers.length) { return; }
    while (body.firstChild) { body.removeChild(body.firstChild); }
    workers.forEach(function (w) {
      var row = body.insertRow();
      if (w.stale) { row.className = "rb-stale"; }
      [w.worker_id, w.hostname, w.pid, (w.consumers || []).join(", ")].forEach(function (v) {
        cell(row, String(v), false);
      });
      [w.processed, w.failed, w.retried].forEach(function (v) { cell(row, String(v), true); });
      var seen = cell(row, String(w.last_seen).replace("T", " ").slice(0, 19), false);
      if (w.stale) { seen.appendChild(document.createElement("strong")).textContent = " stale"; }
    });
  }

  function applyFilter() {
    var text = document.getElementById("rb-filter").value.toLowerCase();
    var retries = document.getElementById("rb-show-retry").checked;
    root.querySelectorAll("#rb-queues tr[data-queue]").forEach(function (row) {
      var match = row.dataset.queue.toLowerCase().indexOf(text) >= 0;
      row.hidden = !match || (!retries && row.classList.contains("rb-retry"));
    });
  }

  function show(value, rate) {
    if (value === null || value === undefined) { return "-"; }
    return rate ? Number(value).toFixed(1) : String(value);
  }

  function updateQueues(queues) {
    var rows = {};
    var now = Date.now();
    root.querySelectorAll("tr[data-queue]").forEach(function (row) { rows[row.dataset.queue] = row; });
    queues.forEach(function (queue) {
      var row = rows[queue.name];
      if (!row) { return; }
      row.querySelectorAll("[data-field]").forEach(function (cell) {
        var field = cell.dataset.field;
        cell.textContent = show(queue[field], field.indexOf("rate") >= 0);
      });
      drawCharts(row, queue, now);
    });
  }

  // Task queues: broker counts, and the stored results by status (links kept, text replaced).
  function updateTasks(tasks) {
    var rows = {};
    root.querySelectorAll("tr[data-task-queue]").forEach(function (row) { rows[row.dataset.taskQueue] = row; });
    tasks.forEach(function (task) {
      var row = rows[task.backend + ":" + task.name];
      if (!row) { return; }
      row.querySelectorAll("[data-field]").forEach(function (cell) {
        cell.textContent = show(task[cell.dataset.field], false);
      });
      row.querySelectorAll("[data-status]").forEach(function (cell) {
        var target = cell.querySelector("a") || cell;
        target.textContent = show((task.results || {})[cell.dataset.status], false);
      });
    });
  }

  // Cluster nodes (management API): state, alarms and our connections on each.
  function updateNodes(nodes) {
    nodes.forEach(function (node) {
      var row = root.querySelector('tr[data-node="' + CSS.escape(node.name) + '"]');
      if (!row) { return; }
      row.querySelector('[data-field="state"]').textContent = node.running ? "running" : "down";
      row.querySelector('[data-field="alarms"]').textContent = node.alarms.join(", ") || "-";
      row.querySelector('[data-field="connections"]').textContent = String(node.connections);
    });
  }

  function updateOverview(data) {
    updateQueues(data.queues || []);
    updateNodes(data.nodes || []);
    updateTasks(data.tasks || []);
    updateTotals(data.queues || [], data.workers || []);
    updateWorkers(data.workers || []);
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
    setLive("polling", "live");
    pollTimer = window.setInterval(function () {
      fetch(root.dataset.jsonUrl, {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { updateOverview(data); } })
        .catch(function () { setLive("polling (last request failed)", "off"); });
    }, 2000);
  }

  function connect() {
    if (!("WebSocket" in window)) { poll(); return; }
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + root.dataset.wsPath);
    var opened = false;
    socket.onopen = function () { opened = true; setLive("WebSocket", "live"); };
    socket.onmessage = function (message) {
      var payload = JSON.parse(message.data);
      if (payload.type === "overview") { updateOverview(payload.data); }
      else if (payload.type === "event") { addEvent(payload.kind, payload.data); }
    };
    socket.onclose = function () {
      if (opened) { setLive("reconnecting", "off"); window.setTimeout(connect, 2000); }
      else { poll(); }
    };
  }

  document.getElementById("rb-filter").addEventListener("input", applyFilter);
  document.getElementById("rb-show-retry").addEventListener("change", applyFilter);
  connect();
})();
