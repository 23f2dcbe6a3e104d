// ticketsort model page: refresh the consumer's live counts every 5 s.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  async function refresh() {
    try {
      const r = await fetch("/api/live", { credentials: "same-origin" });
      const data = await r.json();
      if (!data.ok) return;
      for (const [key, value] of Object.entries(data.counts)) {
        const el = document.getElementById("live-" + key);
        if (el) el.textContent = String(Math.round(value));
        const rate = document.getElementById("rate-" + key);
        const v = data.rates[key];
        if (rate && v !== null && v !== undefined) rate.textContent = v.toFixed(1) + " / s";
      }
      const share = document.getElementById("live-share");
      if (share && data.review_share !== null) share.textContent = (data.review_share * 100).toFixed(1) + "%";
    } catch (e) { /* the consumer may be restarting */ }
  }
  setInterval(refresh, 5000);
  refresh();
})();
