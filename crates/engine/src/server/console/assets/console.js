// Tandem's operator console: keeps the overview's figures live by polling
// /console/overview.json every few seconds and replacing the text of every element marked
// data-live="<key>". Text only (never HTML), so nothing the store holds can become markup.
(function () {
  "use strict";
  var cells = document.querySelectorAll("[data-live]");
  if (cells.length === 0) return;
  var status = document.querySelector("[data-live-status]");
  var every = 3000;
  function mark(text, stale) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("stale", stale);
  }
  function refresh() {
    fetch("/console/overview.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (r.status === 401) { window.location.assign("/login"); throw new Error("signed out"); }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        cells.forEach(function (el) {
          var v = data.values[el.getAttribute("data-live")];
          if (v !== undefined && el.textContent !== v) el.textContent = v;
        });
        mark("live, updated " + new Date(data.at).toLocaleTimeString(), false);
      })
      .catch(function (e) { mark("not updating: " + e.message, true); })
      .finally(function () { window.setTimeout(refresh, every); });
  }
  window.setTimeout(refresh, every);
})();
