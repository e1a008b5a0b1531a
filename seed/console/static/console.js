// Refresh the page's live part in place: fetch ?partial=1 and swap #live (no full reload).
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const every = Math.max(1, parseFloat(live.dataset.refresh || "10")) * 1000;
  const state = document.getElementById("refresh-state");
  let busy = false;

  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const url = new URL(window.location.href);
      url.searchParams.set("partial", "1");
      const res = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (res.redirected && new URL(res.url).pathname === "/login") {
        window.location.reload(); // session ended: show the login page
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      live.innerHTML = await res.text();
      if (state) { state.textContent = "live"; state.className = ""; }
    } catch (err) {
      if (state) { state.textContent = "console unreachable (" + err.message + "), retrying"; state.className = "stale"; }
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
})();
