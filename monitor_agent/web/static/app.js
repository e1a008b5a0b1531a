/* Dashboard behaviour: one WebSocket for live events, small fetches for the rest. */
(function () {
  "use strict";
  var page = document.body.dataset.page;
  // Federation state labels and task status icons: the server's one definition (web/dashboard.py).
  var STATES = JSON.parse(document.body.dataset.states || "{}");
  var TASK_ICONS = JSON.parse(document.body.dataset.taskIcons || "{}");
  var FEED_MAX = 200;

  function $(id) { return document.getElementById(id); }
  function text(id, v) { var n = $(id); if (n) n.textContent = v; }
  function ident(v) { return v === null || v === undefined ? "–" : String(v); }
  function num(v, unit) { return v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US") + (unit || ""); }
  function hhmmss(ts) { return ts && ts.length >= 19 ? ts.slice(11, 19) : (ts || "–"); }
  function token() { try { return sessionStorage.getItem("monitorToken") || ""; } catch (e) { return ""; } }

  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    var init = { method: method, headers: headers };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(path, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var msg = (data && data.error && data.error.message) || ("HTTP " + r.status);
          var err = new Error(msg); err.status = r.status; throw err;
        }
        return data;
      });
    });
  }

  /* ---- federation badge ---- */
  function setState(status) {
    if (!status || !status.state) return;
    var badge = $("fed-badge"), s = STATES[status.state] || ["?", status.state];
    badge.className = "badge state-" + status.state;
    badge.querySelector(".badge-icon").textContent = s[0];
    text("fed-state", s[1]);
    var failing = status.state === "ERROR" || status.state === "DEGRADED";
    badge.title = failing && status.lastError ? status.lastError.code + ": " + status.lastError.message
      : "Federation connection state";
    if (status.lastError && status.lastError.code && failing) {
      showError(status.lastError.code + ": " + status.lastError.message);
    }
    if (status.stats) setNetStats(status.stats);
  }

  function showError(msg) {
    var b = $("error-banner");
    text("error-text", msg);
    b.hidden = false;
    clearTimeout(showError.t);
    showError.t = setTimeout(function () { b.hidden = true; }, 15000);
  }

  function setNetStats(s) {
    if (page !== "network") return;
    if ("connectedPeers" in s) text("net-peers", num(s.connectedPeers));
    if ("activeNodes" in s) text("net-active", num(s.activeNodes));
    if ("tasks24h" in s) text("net-tasks24h", num(s.tasks24h));
    if ("tasksCompleted24h" in s) text("net-completed24h", num(s.tasksCompleted24h));
    if ("avgExecutionMs" in s) text("net-avg", num(s.avgExecutionMs, " ms"));
  }

  /* ---- rows ---- */
  function statusCell(status) {
    var td = document.createElement("td"), span = document.createElement("span"), icon = document.createElement("span");
    span.className = "status status-" + status;
    icon.setAttribute("aria-hidden", "true");
    icon.textContent = TASK_ICONS[status] || "?";
    span.appendChild(icon);
    span.appendChild(document.createTextNode(" " + status));
    td.appendChild(span);
    return td;
  }
  function cell(v, cls) { var td = document.createElement("td"); td.textContent = v; if (cls) td.className = cls; return td; }

  function prependRow(tbody, tr, max) {
    var empty = tbody.querySelector("tr.empty");
    if (empty) empty.remove();
    tr.className = "fresh";
    tbody.insertBefore(tr, tbody.firstChild);
    while (tbody.rows.length > max) tbody.deleteRow(tbody.rows.length - 1);
  }

  function addFeedRow(t) {
    var tbody = document.querySelector("#global-feed tbody");
    if (!tbody) return;
    var tr = document.createElement("tr");
    tr.dataset.taskId = t.taskId || "";
    tr.appendChild(statusCell(t.status));
    tr.appendChild(cell(ident(t.chainId)));
    tr.appendChild(cell(ident(t.blockNumber)));
    tr.appendChild(cell(t.taskType || "–"));
    tr.appendChild(cell(num(t.executionTimeMs), "num"));
    tr.appendChild(cell(t.sourceNode || "–", "mono"));
    tr.appendChild(cell(hhmmss(t.receivedAt || new Date().toISOString())));
    prependRow(tbody, tr, FEED_MAX);
    var total = $("feed-total");
    if (total) total.textContent = String((parseInt(total.textContent, 10) || 0) + 1);
  }

  function addLocalRow(t) {
    var tbody = document.querySelector("#local-tasks tbody");
    if (!tbody) return;
    var tr = document.createElement("tr");
    tr.appendChild(statusCell(t.status));
    tr.appendChild(cell(ident(t.chainId)));
    tr.appendChild(cell(t.taskType || "–"));
    tr.appendChild(cell(num(t.executionTimeMs), "num"));
    tr.appendChild(cell(hhmmss(t.receivedAt)));
    prependRow(tbody, tr, 25);
  }

  /* ---- peers ---- */
  function renderPeers(d) {
    var box = $("peers");
    if (!box) return;
    var byRegion = {};
    d.peers.forEach(function (p) { (byRegion[p.region] = byRegion[p.region] || []).push(p); });
    box.textContent = "";
    var regions = Object.keys(byRegion).sort();
    if (!regions.length) {
      var none = document.createElement("p"); none.className = "muted";
      none.textContent = "No peers heard from in the last 10 minutes."; box.appendChild(none);
    }
    regions.forEach(function (region) {
      var list = byRegion[region], online = list.filter(function (p) { return p.online; }).length;
      var div = document.createElement("div"), h3 = document.createElement("h3"), count = document.createElement("span");
      var ul = document.createElement("ul");
      div.className = "region"; ul.className = "peer-list"; count.className = "muted small";
      h3.textContent = region + " "; count.textContent = online + "/" + list.length + " online"; h3.appendChild(count);
      list.forEach(function (p) {
        var li = document.createElement("li"), dot = document.createElement("span"), id = document.createElement("span");
        var st = document.createElement("span"), n = document.createElement("span");
        li.className = "peer " + (p.online ? "online" : "offline");
        dot.setAttribute("aria-hidden", "true"); dot.textContent = p.online ? "●" : "○";
        id.className = "mono"; id.textContent = p.nodeId;
        st.className = "peer-state"; st.textContent = p.online ? "online" : "offline";
        n.className = "muted small"; n.textContent = p.tasksReported + " tasks";
        [dot, id, st, n].forEach(function (x) { li.appendChild(x); });
        ul.appendChild(li);
      });
      div.appendChild(h3); div.appendChild(ul); box.appendChild(div);
    });
    text("peers-total", String(d.total));
    text("peers-online", String(d.peers.filter(function (p) { return p.online; }).length));
  }
  function loadPeers() { api("GET", "/api/federation/peers").then(renderPeers).catch(function () {}); }

  /* ---- charts ---- */
  var chain = { minutes: 15, tasks: [] };  // [{chainId, at(ms)}] for the per-minute chart

  function drawChainChart() {
    var target = $("chain-chart");
    if (!target || !window.TinyChart) return;
    var now = Date.now(), start = Math.floor(now / 60000) - chain.minutes + 1;
    chain.tasks = chain.tasks.filter(function (t) { return Math.floor(t.at / 60000) >= start; });
    var labels = [], byChain = {};
    for (var m = 0; m < chain.minutes; m++) {
      labels.push(new Date((start + m) * 60000).toISOString().slice(11, 16));
    }
    chain.tasks.forEach(function (t) {
      var k = "chain " + t.chainId;
      if (!byChain[k]) byChain[k] = new Array(chain.minutes).fill(0);
      byChain[k][Math.floor(t.at / 60000) - start] += 1;
    });
    var series = Object.keys(byChain).sort().map(function (k) { return { name: k, values: byChain[k] }; });
    TinyChart.stacked(target, { labels: labels, series: series }, {
      title: "Tasks per chain per minute, last " + chain.minutes + " minutes (UTC)",
      empty: "No federation tasks in the last " + chain.minutes + " minutes."
    });
  }

  function loadChainChart() {
    var since = new Date(Date.now() - chain.minutes * 60000).toISOString().slice(0, 19) + "Z";
    api("GET", "/api/federation/tasks/global?limit=1000&since=" + encodeURIComponent(since)).then(function (d) {
      chain.tasks = d.tasks.map(function (t) { return { chainId: t.chainId, at: Date.parse(t.receivedAt) }; });
      drawChainChart();
    }).catch(function () { drawChainChart(); });
  }

  var execTasks = [];
  function drawExecChart() {
    var target = $("exec-chart");
    if (!target || !window.TinyChart) return;
    var items = execTasks.filter(function (t) { return t.executionTimeMs !== null && t.executionTimeMs !== undefined; })
      .slice(0, 40).reverse().map(function (t) {
        return { label: (t.taskType || "task") + " " + t.status, value: t.executionTimeMs,
                 mark: t.status === "failed" ? "✗" : "", color: t.status === "failed" ? "#D55E00" : "#0072B2" };
      });
    TinyChart.bars(target, items, { unit: " ms", title: "Execution time of the last " + items.length + " tasks",
      empty: "No finished tasks yet." });
  }
  function loadNode() {
    api("GET", "/api/tasks?limit=100").then(function (d) { execTasks = d.tasks; drawExecChart(); })
      .catch(function () { drawExecChart(); });
  }
  var statsTimer = null;
  function refreshLocalStats() {
    if (statsTimer) return;
    statsTimer = setTimeout(function () {
      statsTimer = null;
      api("GET", "/api/stats").then(function (s) {
        text("stat-received", num(s.total));
        text("stat-completed", num(s.byStatus.completed));
        text("stat-failed", num(s.byStatus.failed));
        text("stat-active", num(s.activeTasks));
        text("stat-avg", num(s.avgExecutionMs, " ms"));
      }).catch(function () {});
    }, 500);
  }

  /* ---- me vs network ---- */
  var VERDICTS = {
    not_enough_data: ["…", "Not enough data"], in_line: ["✓", "In line with the network"],
    your_node: ["⚠", "Your node"], the_network: ["⚠", "The network"]
  };
  var compareWindow = "1h", compareBody = null;
  function pct(v) { return v === null || v === undefined ? "–" : (v * 100).toFixed(1) + " %"; }
  function ms(v) { return v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US") + " ms"; }

  function compareRow(tbody, label, own, net) {
    var tr = document.createElement("tr"), th = document.createElement("th");
    th.scope = "row"; th.textContent = label; tr.appendChild(th);
    tr.appendChild(cell(own, "num")); tr.appendChild(cell(net, "num"));
    tbody.appendChild(tr);
  }

  function renderCompare(body) {
    var box = $("compare");
    if (!box || !body) return;
    compareBody = body;
    box.textContent = "";
    if (!body.chains.length) {
      var none = document.createElement("p"); none.className = "muted";
      none.textContent = "Nothing to compare yet: no tasks of this node or of the network in the window.";
      box.appendChild(none);
      return;
    }
    body.chains.forEach(function (c) {
      var art = document.createElement("article"), h3 = document.createElement("h3");
      var v = VERDICTS[c.verdict.verdict] || ["?", c.verdict.verdict];
      art.className = "compare-chain verdict-" + c.verdict.verdict;
      art.dataset.chainId = String(c.chainId);
      h3.textContent = "Chain " + c.chainId; art.appendChild(h3);
      var verdict = document.createElement("p"), icon = document.createElement("span");
      verdict.className = "verdict";
      verdict.title = v[1];
      icon.setAttribute("aria-hidden", "true"); icon.textContent = v[0] + " ";
      verdict.appendChild(icon);
      verdict.appendChild(document.createTextNode(c.verdict.text));
      art.appendChild(verdict);
      var wrap = document.createElement("div"), table = document.createElement("table");
      wrap.className = "table-wrap"; table.className = "data compare-table";
      var thead = document.createElement("thead"), hr = document.createElement("tr");
      ["", "This node", "Network"].forEach(function (t, i) {
        var th = document.createElement("th"); th.scope = "col"; th.textContent = t; if (i) th.className = "num"; hr.appendChild(th);
      });
      thead.appendChild(hr); table.appendChild(thead);
      var tbody = document.createElement("tbody");
      compareRow(tbody, "p50 execution", ms(c.own.executionMs.p50), ms(c.network.executionMs.p50));
      compareRow(tbody, "p90 execution", ms(c.own.executionMs.p90), ms(c.network.executionMs.p90));
      compareRow(tbody, "Failure rate", pct(c.own.failureRate), pct(c.network.failureRate));
      compareRow(tbody, "Tasks (failed)", num(c.own.events) + " (" + num(c.own.failed) + ")",
        num(c.network.events) + " (" + num(c.network.failed) + ")");
      compareRow(tbody, "Nodes", "1", num(c.network.nodes));
      table.appendChild(tbody); wrap.appendChild(table); art.appendChild(wrap);
      var rank = document.createElement("p");
      rank.className = "rank small";
      rank.textContent = c.rank ? c.rank.text : "No rank yet: it needs this node's and other nodes' completed tasks.";
      art.appendChild(rank);
      var fig = document.createElement("figure");
      fig.className = "chart compare-chart";
      art.appendChild(fig);
      box.appendChild(art);
      if (window.TinyChart) {
        TinyChart.lines(fig, {
          labels: c.series.map(function (p) { return p.t.slice(11, 16); }),
          series: [
            { name: "This node p50", values: c.series.map(function (p) { return p.ownP50; }), color: "#D55E00" },
            { name: "Network p50", values: c.series.map(function (p) { return p.networkP50; }), color: "#0072B2", dash: "5 3" }
          ]
        }, { unit: " ms", axisUnit: "", height: 120, title: "p50 execution time on chain " + c.chainId + ", this node and the network, per " +
          (body.window === "1h" ? "10 minutes" : "hour") + " (UTC)", empty: "No execution times in the window yet." });
      }
    });
  }

  function loadCompare() {
    api("GET", "/api/compare?window=" + compareWindow).then(renderCompare).catch(function (e) {
      var box = $("compare"); if (box && !compareBody) box.textContent = "The comparison is not available: " + e.message;
    });
  }

  function initCompare() {
    var buttons = document.querySelectorAll(".window-btn");
    Array.prototype.forEach.call(buttons, function (b) {
      b.addEventListener("click", function () {
        compareWindow = b.dataset.window;
        Array.prototype.forEach.call(buttons, function (x) { x.setAttribute("aria-pressed", String(x === b)); });
        loadCompare();
      });
    });
    loadCompare();
    // The WebSocket carries the 1 h comparison; the 24 h one is fetched now and then.
    setInterval(function () { if (compareWindow === "24h") loadCompare(); }, 60000);
  }

  /* ---- live events ---- */
  var backoff = 500;
  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/ws");
    ws.onopen = function () { backoff = 500; text("live-state", "on"); };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      var d = msg.data || {};
      switch (msg.type) {
        case "hello": setState(d.status); break;
        case "federation_status": setState(d); break;
        case "federation_stats": setNetStats(d); break;
        case "federation_error": showError((d.code || "error") + ": " + (d.message || "")); break;
        case "federation_task":
          addFeedRow(d);
          chain.tasks.push({ chainId: d.chainId, at: d.receivedAt ? Date.parse(d.receivedAt) : Date.now() });
          drawChainChart();
          break;
        case "federation_compare":
          if (page === "node" && compareWindow === "1h") renderCompare(d);
          break;
        case "local_task":
          if (page === "node") {
            addLocalRow(d);
            execTasks.unshift(d);
            drawExecChart();
            refreshLocalStats();
          }
          break;
      }
    };
    ws.onclose = function (ev) {
      text("live-state", "reconnecting" + (ev.reason ? " (" + ev.reason + ")" : ""));
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  // The badge must be right even if a status event was missed (e.g. while the socket reconnected).
  function pollStatus() {
    api("GET", "/api/federation/status").then(setState).catch(function () {});
  }

  /* ---- settings ---- */
  function initSettings() {
    var form = $("settings-form"), tokenInput = $("token");
    if (!form) return;
    tokenInput.value = token();
    tokenInput.addEventListener("change", function () {
      try { sessionStorage.setItem("monitorToken", tokenInput.value.trim()); } catch (e) {}
    });
    function result(id, ok, msg) { var n = $(id); n.className = "result " + (ok ? "ok" : "err"); n.textContent = msg; }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      try { sessionStorage.setItem("monitorToken", tokenInput.value.trim()); } catch (e) {}
      var body = {};
      ["enabled", "broadcastTasks", "broadcastStats", "receiveEnabled"].forEach(function (k) { body[k] = form.elements[k].checked; });
      api("POST", "/api/federation/settings", body).then(function (s) {
        result("settings-result", true, s.restartRequired ? "Saved. Restart the agent to apply every change." : "Saved and applied.");
        pollStatus();
      }).catch(function (e) {
        result("settings-result", false, e.status === 401 ? "Not saved: the token is missing or wrong." : "Not saved: " + e.message);
      });
    });
    $("erase-start").addEventListener("click", function () { $("erase-confirm").hidden = false; $("erase-yes").focus(); });
    $("erase-no").addEventListener("click", function () { $("erase-confirm").hidden = true; });
    $("erase-yes").addEventListener("click", function () {
      try { sessionStorage.setItem("monitorToken", tokenInput.value.trim()); } catch (e) {}
      api("POST", "/api/federation/clear").then(function (d) {
        $("erase-confirm").hidden = true;
        result("erase-result", true, "Deleted " + d.deleted.tasks + " tasks and " + d.deleted.peers + " peers.");
      }).catch(function (e) {
        result("erase-result", false, e.status === 401 ? "Nothing deleted: the token is missing or wrong." : "Nothing deleted: " + e.message);
      });
    });
  }

  /* ---- privacy ---- */
  function renderOutbox(d) {
    var list = $("outbox");
    text("privacy-blocked", num(d.blocked));
    text("privacy-count", num(d.outbox.length));
    list.textContent = "";
    if (!d.outbox.length) {
      var li = document.createElement("li"); li.className = "empty"; li.textContent = "Nothing sent yet."; list.appendChild(li);
      return;
    }
    d.outbox.slice().reverse().forEach(function (m) {
      var li = document.createElement("li"), head = document.createElement("div"), pre = document.createElement("pre");
      li.className = m.blocked ? "blocked" : "sent";
      head.className = "outbox-head";
      var st = document.createElement("span");
      st.className = "status " + (m.blocked ? "status-failed" : "status-completed");
      st.textContent = (m.blocked ? "✗ blocked" : "↑ sent");
      head.appendChild(st);
      var subj = document.createElement("span"); subj.className = "mono"; subj.textContent = m.subject || ""; head.appendChild(subj);
      var at = document.createElement("time"); at.textContent = m.at || ""; head.appendChild(at);
      if (m.reason) { var r = document.createElement("span"); r.className = "muted small"; r.textContent = m.reason; head.appendChild(r); }
      pre.textContent = m.payload;
      li.appendChild(head);
      var names = Object.keys(m.headers || {});
      if (names.length) {  // the NATS headers are sent too (Tbf-Key, Tbf-Sig)
        var hp = document.createElement("pre"); hp.className = "outbox-headers";
        hp.textContent = names.map(function (k) { return k + ": " + m.headers[k]; }).join("\n");
        li.appendChild(hp);
      }
      li.appendChild(pre);
      list.appendChild(li);
    });
  }
  function loadPrivacy() { api("GET", "/api/privacy").then(renderOutbox).catch(function () {}); }

  document.addEventListener("DOMContentLoaded", function () {
    connect();
    setInterval(pollStatus, 10000);
    if (page === "network") {
      loadChainChart();
      setInterval(drawChainChart, 30000);
      setInterval(loadPeers, 10000);
    }
    window.addEventListener("resize", function () {
      clearTimeout(window.__redraw);
      window.__redraw = setTimeout(function () {
        drawChainChart(); drawExecChart(); if (page === "node" && compareBody) renderCompare(compareBody);
      }, 200);
    });
    if (page === "node") { loadNode(); initCompare(); }
    if (page === "settings") initSettings();
    if (page === "privacy") {
      $("outbox-refresh").addEventListener("click", loadPrivacy);
      setInterval(loadPrivacy, 5000);
    }
  });
})();
