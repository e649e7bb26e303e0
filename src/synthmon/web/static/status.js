// synthmon status pages: refresh <main> in place every data-refresh seconds, keeping
// the scroll position, open <details> and the filters (they live outside <main> and
// in the URL). The pages are complete without this file.
(function () {
  "use strict";
  var form = document.querySelector("form.filters");
  if (form) {
    // Filters left at "any" stay out of the URL, so it reads ?state=failing.
    var clean = function () {
      form.querySelectorAll("select").forEach(function (s) { s.disabled = !s.value; });
    };
    form.addEventListener("submit", clean);
    form.addEventListener("change", function () { clean(); form.submit(); });
    window.addEventListener("pageshow", function () {
      form.querySelectorAll("select").forEach(function (s) { s.disabled = false; });
    });
  }
  var main = document.querySelector("main[data-refresh]");
  if (!main || !window.fetch || !window.DOMParser) { return; }
  var every = parseFloat(main.getAttribute("data-refresh")) * 1000;
  if (!(every > 0)) { return; }
  var updated = document.querySelector("[data-updated]");

  function refresh() {
    if (document.hidden) { setTimeout(refresh, every); return; }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store",
                                   headers: { "X-Synthmon-Refresh": "1" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = doc.querySelector("main");
        if (!fresh) { throw new Error("no <main> in the answer"); }
        var x = window.scrollX, y = window.scrollY;
        var open = [];
        main.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
        main.innerHTML = fresh.innerHTML;
        open.forEach(function (id) {
          var d = document.getElementById(id);
          if (d) { d.open = true; }
        });
        window.scrollTo(x, y);
        var freshUpdated = doc.querySelector("[data-updated]");
        if (updated && freshUpdated) {
          updated.innerHTML = freshUpdated.innerHTML;
          updated.classList.remove("stale");
        }
        main.dispatchEvent(new CustomEvent("synthmon:refreshed"));
      })
      .catch(function (err) {
        if (updated) {
          updated.classList.add("stale");
          updated.textContent = "refresh failed (" + err.message + "); showing older data";
        }
      })
      .then(function () { setTimeout(refresh, every); });
  }
  setTimeout(refresh, every);
})();
