// Small hand-written SVG charts for the rabbitbus dashboard (no library, no CDN).
// rabbitbusCharts.draw(svg, points, series, windowMs): points are [time_ms, a, b, ...]
// rows, oldest first (NaN where a value is not known); series names the CSS class of each
// value column (index 1, 2, ...).
// The first series is drawn as a filled area, the others as lines over it. Every column
// shares one y scale from 0 to the window's maximum, printed top left; the window's
// length is printed top right.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var WIDTH = 168, HEIGHT = 34, TOP = 9;

  function element(name, attributes) {
    var node = document.createElementNS(NS, name);
    Object.keys(attributes).forEach(function (key) { node.setAttribute(key, attributes[key]); });
    return node;
  }

  function label(value) {
    if (value >= 1000) { return (value / 1000).toFixed(1) + "k"; }
    return value >= 10 || value === Math.round(value) ? String(Math.round(value)) : value.toFixed(1);
  }

  function span(ms) {
    return ms >= 60000 ? Math.round(ms / 60000) + " min" : Math.round(ms / 1000) + " s";
  }

  function path(points, column, x, y, closed) {
    points = points.filter(function (p) { return isFinite(p[column]); });  // NaN: not known
    var d = points.map(function (p, i) {
      return (i ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[column]).toFixed(1);
    }).join(" ");
    if (closed && points.length) {
      d += " L" + x(points[points.length - 1][0]).toFixed(1) + " " + HEIGHT +
           " L" + x(points[0][0]).toFixed(1) + " " + HEIGHT + " Z";
    }
    return d;
  }

  function draw(svg, points, series, windowMs) {
    var end = points.length ? points[points.length - 1][0] : Date.now();
    var start = end - windowMs;
    var shown = points.filter(function (p) { return p[0] >= start; });
    var top = 0;
    shown.forEach(function (p) {
      series.forEach(function (_, i) { if (isFinite(p[i + 1])) { top = Math.max(top, p[i + 1]); } });
    });
    var scale = top > 0 ? top : 1;
    function x(t) { return (t - start) / windowMs * WIDTH; }
    function y(v) { return HEIGHT - v / scale * (HEIGHT - TOP); }
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    svg.setAttribute("viewBox", "0 0 " + WIDTH + " " + HEIGHT);
    svg.appendChild(element("line", {"class": "rb-axis", x1: 0, x2: WIDTH, y1: HEIGHT, y2: HEIGHT}));
    series.forEach(function (name, i) {
      svg.appendChild(element("path", {"class": name, d: path(shown, i + 1, x, y, i === 0)}));
    });
    var max = element("text", {x: 0, y: 8});
    max.textContent = "max " + label(top);
    svg.appendChild(max);
    var length = element("text", {x: WIDTH, y: 8, "text-anchor": "end"});
    length.textContent = span(windowMs);
    svg.appendChild(length);
    svg.dataset.points = String(shown.length);
  }

  window.rabbitbusCharts = {draw: draw};
})();
