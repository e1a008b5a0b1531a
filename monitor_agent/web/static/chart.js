/* tinychart: the dashboard's own small SVG bar charts (no dependencies, works offline). */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  // Okabe-Ito: distinguishable with the common colour-vision deficiencies; the legend names each series.
  var PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999"];

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function frame(target, title, w, h) {
    target.textContent = "";
    var svg = el("svg", { viewBox: "0 0 " + w + " " + h, role: "img", "aria-label": title });
    svg.appendChild(el("title", {}, title));
    target.appendChild(svg);
    return svg;
  }

  function axes(svg, w, h, pad, max, unit) {
    svg.appendChild(el("line", { x1: pad.l, y1: h - pad.b, x2: w - pad.r, y2: h - pad.b, class: "axis" }));
    svg.appendChild(el("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: h - pad.b, class: "axis" }));
    svg.appendChild(el("text", { x: pad.l - 4, y: pad.t + 8, "text-anchor": "end" }, fmt(max) + (unit || "")));
    svg.appendChild(el("text", { x: pad.l - 4, y: h - pad.b, "text-anchor": "end" }, "0"));
  }

  // Draw at the container's pixel width so labels keep their size on a phone and a desktop.
  function widthOf(target) { return Math.max(280, Math.min(1200, (target.clientWidth || 600) - 16)); }

  function fmt(n) { return n >= 10000 ? Math.round(n / 1000) + "k" : String(Math.round(n)); }

  /* One series: items = [{label, value, mark}] (mark: a character drawn above the bar, e.g. ✗). */
  function bars(target, items, opts) {
    opts = opts || {};
    var w = widthOf(target), h = 180, pad = { l: 44, r: 6, t: 10, b: 22 };
    var title = opts.title || "bar chart";
    if (!items.length) { target.innerHTML = '<p class="muted">' + (opts.empty || "No data yet.") + "</p>"; return; }
    var svg = frame(target, title, w, h);
    var max = niceMax(Math.max.apply(null, items.map(function (d) { return d.value || 0; })));
    axes(svg, w, h, pad, max, opts.unit);
    // At least `slots` slots: one task is a bar, not a wall; bars sit right-aligned (newest last).
    var slots = Math.max(items.length, opts.slots || 20), offset = slots - items.length;
    var bw = (w - pad.l - pad.r) / slots;
    items.forEach(function (d, i) {
      var v = d.value || 0, bh = (h - pad.t - pad.b) * v / max;
      var x = pad.l + (offset + i) * bw + bw * 0.1, y = h - pad.b - bh;
      var r = el("rect", { x: x, y: y, width: Math.max(1, bw * 0.8), height: Math.max(0, bh), fill: d.color || PALETTE[0] });
      r.appendChild(el("title", {}, (d.label || "") + ": " + v + (opts.unit || "")));
      svg.appendChild(r);
      if (d.mark) svg.appendChild(el("text", { x: x + bw * 0.4, y: Math.max(pad.t + 8, y - 2), "text-anchor": "middle", class: "mark" }, d.mark));
    });
    if (opts.firstLabel) svg.appendChild(el("text", { x: pad.l, y: h - 6 }, opts.firstLabel));
    if (opts.lastLabel) svg.appendChild(el("text", { x: w - pad.r, y: h - 6, "text-anchor": "end" }, opts.lastLabel));
  }

  /* Stacked series over shared labels: data = {labels: [...], series: [{name, values: [...]}]}. */
  function stacked(target, data, opts) {
    opts = opts || {};
    var w = widthOf(target), h = 180, pad = { l: 44, r: 6, t: 10, b: 22 };
    var title = opts.title || "stacked bar chart";
    var totals = data.labels.map(function (_, i) {
      return data.series.reduce(function (s, ser) { return s + (ser.values[i] || 0); }, 0);
    });
    if (!data.series.length || Math.max.apply(null, totals) === 0) {
      target.innerHTML = '<p class="muted">' + (opts.empty || "No data yet.") + "</p>";
      return;
    }
    var svg = frame(target, title, w, h);
    var max = niceMax(Math.max.apply(null, totals));
    axes(svg, w, h, pad, max, "");
    var bw = (w - pad.l - pad.r) / data.labels.length;
    data.labels.forEach(function (label, i) {
      var y = h - pad.b;
      data.series.forEach(function (ser, si) {
        var v = ser.values[i] || 0;
        if (!v) return;
        var bh = (h - pad.t - pad.b) * v / max;
        y -= bh;
        var r = el("rect", { x: pad.l + i * bw + bw * 0.1, y: y, width: Math.max(1, bw * 0.8), height: bh, fill: PALETTE[si % PALETTE.length] });
        r.appendChild(el("title", {}, label + " · " + ser.name + ": " + v));
        svg.appendChild(r);
      });
    });
    svg.appendChild(el("text", { x: pad.l, y: h - 6 }, data.labels[0]));
    svg.appendChild(el("text", { x: w - pad.r, y: h - 6, "text-anchor": "end" }, data.labels[data.labels.length - 1]));
    var legend = document.createElement("div");
    legend.className = "legend";
    data.series.forEach(function (ser, si) {
      var item = document.createElement("span");
      var sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = PALETTE[si % PALETTE.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(ser.name + " (" + ser.values.reduce(function (a, b) { return a + b; }, 0) + ")"));
      legend.appendChild(item);
    });
    target.appendChild(legend);
  }

  /* Lines over shared labels, gaps where a value is null: data = {labels, series: [{name, values, dash}]}. */
  function lines(target, data, opts) {
    opts = opts || {};
    var w = widthOf(target), h = opts.height || 140, pad = { l: 44, r: 6, t: 10, b: 22 };
    var title = opts.title || "line chart";
    var all = [];
    data.series.forEach(function (ser) { ser.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); }); });
    if (!all.length) { target.innerHTML = '<p class="muted">' + (opts.empty || "No data yet.") + "</p>"; return; }
    var svg = frame(target, title, w, h);
    var max = niceMax(Math.max.apply(null, all));
    axes(svg, w, h, pad, max, opts.axisUnit !== undefined ? opts.axisUnit : opts.unit);
    var n = data.labels.length, step = n > 1 ? (w - pad.l - pad.r) / (n - 1) : 0;
    function xy(i, v) { return [pad.l + (n > 1 ? i * step : (w - pad.l - pad.r) / 2), h - pad.b - (h - pad.t - pad.b) * v / max]; }
    data.series.forEach(function (ser, si) {
      var color = ser.color || PALETTE[si % PALETTE.length], d = "", pen = false;
      ser.values.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = false; return; }
        var p = xy(i, v);
        d += (pen ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1);
        pen = true;
        var c = el("circle", { cx: p[0], cy: p[1], r: 2.5, fill: color });
        c.appendChild(el("title", {}, data.labels[i] + " · " + ser.name + ": " + Math.round(v) + (opts.unit || "")));
        svg.appendChild(c);
      });
      if (d) svg.appendChild(el("path", { d: d, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": ser.dash || "" }));
    });
    svg.appendChild(el("text", { x: pad.l, y: h - 6 }, data.labels[0]));
    svg.appendChild(el("text", { x: w - pad.r, y: h - 6, "text-anchor": "end" }, data.labels[n - 1]));
    var legend = document.createElement("div");
    legend.className = "legend";
    data.series.forEach(function (ser, si) {
      var item = document.createElement("span"), sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = ser.color || PALETTE[si % PALETTE.length];
      item.appendChild(sw);
      item.appendChild(document.createTextNode(ser.name));
      legend.appendChild(item);
    });
    target.appendChild(legend);
  }

  window.TinyChart = { bars: bars, stacked: stacked, lines: lines, palette: PALETTE };
})();
