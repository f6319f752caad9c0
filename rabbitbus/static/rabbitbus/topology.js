// Draws the rabbitbus topology page: exchanges -> bindings -> queues -> consumers and
// procedures, as one hand-written SVG (no library). The data is
// rabbitbus.monitoring.topology_graph's, embedded by the page as JSON. Each work queue is followed by its retry and dead-letter
// queues, joined to it by dashed lines. Text goes in with textContent only.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var COLUMNS = {exchange: [20, 170], queue: [380, 230], satellite: [410, 200], handler: [690, 170]};
  var MAIN = 32, SMALL = 20, TOP = 40;
  var holder = document.getElementById("rb-topology");
  var source = document.getElementById("rb-topology-data");
  if (!holder || !source) { return; }
  var graph = JSON.parse(source.textContent);

  function el(name, attributes, parent) {
    var node = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    if (parent) { parent.appendChild(node); }
    return node;
  }

  function text(parent, x, y, value, className, max) {
    var node = el("text", {x: x, y: y, "class": className || ""}, parent);
    node.textContent = max && value.length > max ? value.slice(0, max - 1) + "\u2026" : value;
    if (max && value.length > max) { el("title", {}, node).textContent = value; }
    return node;
  }

  function box(svg, column, y, height, classes, name, sub) {
    var x = COLUMNS[column][0], width = COLUMNS[column][1];
    var group = el("g", {"class": "rb-node " + classes, "data-name": name}, svg);
    el("rect", {x: x, y: y, width: width, height: height, rx: 4}, group);
    el("title", {}, group).textContent = name + (sub ? " (" + sub + ")" : "");
    if (height >= MAIN) {
      text(group, x + 8, y + 13, name, "", 30);
      text(group, x + 8, y + 26, sub, "rb-sub", 36);
    } else {
      text(group, x + 8, y + 14, name, "", 28);
      text(group, x + width + 8, y + 14, sub, "rb-sub");
    }
    return {x: x, y: y, width: width, height: height, middle: y + height / 2};
  }

  function satelliteLabel(queue) {
    if (queue.kind === "dead-letter") { return "dead letters: after the last attempt"; }
    return "retry: waits " + queue.ttl + " ms, then back to " + queue.parent;
  }

  function placeQueues(svg) {
    var places = {}, y = TOP;
    graph.queues.forEach(function (queue, index) {
      var satellite = queue.parent && places[queue.parent];
      if (satellite) {
        places[queue.name] = box(svg, "satellite", y, SMALL, "rb-kind-" + queue.kind,
          queue.name, satelliteLabel(queue));
        y += SMALL + 6;
      } else {
        if (index) { y += 12; }
        var sub = queue.type + (queue.kind === "rpc" ? " queue of a procedure" : " work queue");
        places[queue.name] = box(svg, "queue", y, MAIN, "rb-kind-" + queue.kind, queue.name, sub);
        y += MAIN + 8;
      }
    });
    return {places: places, bottom: y};
  }

  function placeExchanges(svg, queues, bottom) {
    var wanted = graph.exchanges.map(function (exchange) {
      var ys = graph.bindings.filter(function (b) { return b.exchange === exchange.name; })
        .map(function (b) { return queues[b.queue].middle; });
      var mean = ys.length ? ys.reduce(function (a, b) { return a + b; }, 0) / ys.length : bottom;
      return {exchange: exchange, y: mean - MAIN / 2};
    }).sort(function (a, b) { return a.y - b.y; });
    var places = {}, next = TOP;
    wanted.forEach(function (item) {
      var y = Math.max(item.y, next);
      places[item.exchange.name] = box(svg, "exchange", y, MAIN, "rb-exchange",
        item.exchange.name || "(default)", item.exchange.type + " exchange");
      next = y + MAIN + 12;
    });
    return {places: places, bottom: next};
  }

  function wrap(words, width) {
    var lines = [];
    words.forEach(function (word) {
      var last = lines.length - 1;
      if (last >= 0 && lines[last].length + word.length + 2 <= width) { lines[last] += ", " + word; }
      else { lines.push(word); }
    });
    return lines;
  }

  function bindingEdges(svg, exchanges, queues) {
    var grouped = {};
    graph.bindings.forEach(function (b) {
      var key = b.exchange + "\u0000" + b.queue;
      (grouped[key] = grouped[key] || {binding: b, keys: [], broker: false}).keys.push(b.key || "(no key)");
      grouped[key].broker = grouped[key].broker || b.source === "broker";
    });
    var perQueue = {};
    Object.keys(grouped).forEach(function (key) {
      var edge = grouped[key], from = exchanges[edge.binding.exchange], to = queues[edge.binding.queue];
      var x1 = from.x + from.width, x2 = to.x, middle = (x1 + x2) / 2;
      el("path", {"class": "rb-edge" + (edge.broker ? " rb-edge-broker" : ""), "marker-end": "url(#rb-arrow)",
        d: "M" + x1 + " " + from.middle + " C" + middle + " " + from.middle + " " + middle + " " +
           to.middle + " " + (x2 - 2) + " " + to.middle}, svg);
      // Routing keys stacked upward from the arrow's head, a few to a line.
      var lines = wrap(edge.keys, 30), above = perQueue[edge.binding.queue] || 0;
      lines.forEach(function (line, index) {
        var y = to.middle - 4 - (above + lines.length - 1 - index) * 12;
        text(svg, x2 - 8, y, line, "rb-key", 36).setAttribute("text-anchor", "end");
      });
      perQueue[edge.binding.queue] = above + lines.length;
    });
  }

  function retryEdges(svg, queues) {
    graph.queues.forEach(function (queue) {
      var parent = queue.parent && queues[queue.parent], me = queues[queue.name];
      if (!parent || me.x === parent.x) { return; }
      // Dead-letter lines run nearer the work queue's edge than retry lines, so both show.
      var x = parent.x + (queue.kind === "dead-letter" ? 8 : 18);
      el("path", {"class": "rb-edge rb-edge-" + queue.kind, "marker-end": "url(#rb-arrow)",
        d: "M" + x + " " + (parent.y + parent.height) + " V" + me.middle + " H" + (me.x - 2)}, svg);
    });
  }

  function connectedText(count) {
    if (count === null || count === undefined) { return ""; }
    return count ? ", " + count + " connected" : ", none connected";
  }

  function handlers(svg, queues) {
    var stacked = {};
    graph.handlers.forEach(function (handler) {
      var queue = queues[handler.queue];
      if (!queue) { return; }
      var y = queue.y + (stacked[handler.queue] || 0);
      stacked[handler.queue] = (stacked[handler.queue] || 0) + MAIN + 6;
      var idle = handler.connected === 0 ? " rb-idle" : "";
      var place = box(svg, "handler", y, MAIN, "rb-handler rb-" + handler.kind + idle, handler.name,
        handler.kind + connectedText(handler.connected));
      el("path", {"class": "rb-edge", "marker-end": "url(#rb-arrow)",
        d: "M" + (queue.x + queue.width) + " " + queue.middle + " H" + (place.x - 2)}, svg);
    });
  }

  function draw() {
    var svg = el("svg", {role: "img", "aria-label": "RabbitMQ topology"}, null);
    var marker = el("marker", {id: "rb-arrow", viewBox: "0 0 8 8", refX: 7, refY: 4,
      markerWidth: 7, markerHeight: 7, orient: "auto"}, el("defs", {}, svg));
    el("path", {d: "M0 0 L8 4 L0 8 Z"}, marker);
    [["Exchanges", "exchange"], ["Queues", "queue"], ["Consumers & procedures", "handler"]]
      .forEach(function (pair) { text(svg, COLUMNS[pair[1]][0], 20, pair[0], "rb-column"); });
    var queues = placeQueues(svg);
    var exchanges = placeExchanges(svg, queues.places, queues.bottom);
    bindingEdges(svg, exchanges.places, queues.places);
    retryEdges(svg, queues.places);
    handlers(svg, queues.places);
    var height = Math.max(queues.bottom, exchanges.bottom) + 10;
    var width = COLUMNS.handler[0] + COLUMNS.handler[1] + 20;
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    holder.appendChild(svg);
    holder.dataset.drawn = String(svg.querySelectorAll(".rb-node").length);
  }

  draw();
})();
