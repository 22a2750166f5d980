"use strict";
(function () {
  // Everything this script reads from the page is data: text content, data-* attributes and
  // JSON data blocks parsed with JSON.parse. Nothing is ever evaluated, inserted as HTML or used
  // as a URL.
  var table = document.getElementById("session-index");
  var tbody = table ? table.tBodies[0] : null;
  var rows = tbody ? Array.prototype.slice.call(tbody.rows) : [];
  var filter = document.getElementById("filter");
  var proto = document.getElementById("proto-filter");
  var count = document.getElementById("count");

  // "3 of 5 sessions" in the page's language: the element carries the words (data-one, data-many).
  function countText(el, shown, total) {
    var words = el.getAttribute(total === 1 ? "data-one" : "data-many") || "{shown} / {n}";
    return words.replace("{shown}", String(shown)).replace("{n}", String(total));
  }

  function applyFilter() {
    var terms = (filter.value || "").toLowerCase().split(/\s+/).filter(Boolean);
    var want = proto.value;
    var shown = 0;
    rows.forEach(function (tr) {
      var hay = tr.getAttribute("data-search") + " " + tr.textContent.toLowerCase();
      var ok = (!want || tr.getAttribute("data-proto") === want) &&
        terms.every(function (t) { return hay.indexOf(t) !== -1; });
      tr.classList.toggle("hidden", !ok);
      if (ok) { shown++; }
    });
    count.textContent = countText(count, shown, rows.length);
  }
  if (filter && proto) {
    filter.addEventListener("input", applyFilter);
    proto.addEventListener("change", applyFilter);
  }

  function sortBy(th, key, numeric) {
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var keyed = rows.map(function (tr, i) {
      var v = tr.cells[key].getAttribute("data-v") || "";
      return { tr: tr, v: numeric ? parseFloat(v) || 0 : v.toLowerCase(), i: i };
    });
    keyed.sort(function (a, b) {
      var c = a.v < b.v ? -1 : (a.v > b.v ? 1 : a.i - b.i);
      return asc ? c : -c;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k.tr); });
    tbody.appendChild(frag);
    rows = keyed.map(function (k) { return k.tr; });
  }
  if (table) {
    Array.prototype.forEach.call(table.tHead.querySelectorAll("button[data-key]"), function (b) {
      b.addEventListener("click", function () {
        sortBy(b.parentNode, parseInt(b.getAttribute("data-key"), 10), b.getAttribute("data-type") === "num");
      });
    });
  }

  // Findings: show only those of a severity and higher.
  var sevFilter = document.getElementById("sev-filter");
  var sevCount = document.getElementById("sev-count");
  var findingRows = Array.prototype.slice.call(document.querySelectorAll("#findings-table tbody tr"));
  var RANK = { info: 0, low: 1, medium: 2, high: 3 };
  if (sevFilter && sevCount) {
    sevFilter.addEventListener("change", function () {
      var want = sevFilter.value ? RANK[sevFilter.value] : -1;
      var shown = 0;
      findingRows.forEach(function (tr) {
        var ok = RANK[tr.getAttribute("data-sev")] >= want;
        tr.classList.toggle("hidden", !ok);
        if (ok) { shown++; }
      });
      sevCount.textContent = countText(sevCount, shown, findingRows.length);
    });
  }

  // Opening a section: links to #sN or #sN-fFRAME open the <details> they point into.
  function openTarget(id) {
    if (!id) { return; }
    var el = document.getElementById(id);
    if (!el) { return; }
    var d = el.closest("details.session");
    if (d && !d.open) { d.open = true; }
    el.scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", function () { openTarget(decodeURIComponent(location.hash.slice(1))); });
  document.addEventListener("click", function (ev) {
    // a click with a modifier (Ctrl/Cmd: a new tab, Shift: a new window) is the browser's, not this page's
    if (ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.altKey) { return; }
    var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
    if (a) {
      // at once, not on hashchange (which comes later, and not at all for the hash already there)
      openTarget(decodeURIComponent(a.getAttribute("href").slice(1)));
    }
  });
  if (location.hash) { openTarget(decodeURIComponent(location.hash.slice(1))); }

  function setAll(open) {
    Array.prototype.forEach.call(document.querySelectorAll("details.session"), function (d) { d.open = open; });
  }
  var ea = document.getElementById("expand-all");
  var ca = document.getElementById("collapse-all");
  if (ea) { ea.addEventListener("click", function () { setAll(true); }); }
  if (ca) { ca.addEventListener("click", function () { setAll(false); }); }

  // Printing shows every section; afterwards the page is as it was.
  var wasOpen = null;
  window.addEventListener("beforeprint", function () {
    wasOpen = Array.prototype.map.call(document.querySelectorAll("details"), function (d) { return d.open; });
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d) { d.open = true; });
  });
  window.addEventListener("afterprint", function () {
    if (!wasOpen) { return; }
    Array.prototype.forEach.call(document.querySelectorAll("details"), function (d, i) { d.open = wasOpen[i]; });
    wasOpen = null;
  });

  function save(blob, name) {
    var url = URL.createObjectURL(blob);
    var a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  }

  var dj = document.getElementById("download-json");
  if (dj) {
    dj.addEventListener("click", function () {
      var sessions = JSON.parse(document.getElementById("session-data").textContent);
      var have = {};
      sessions.forEach(function (s) { have[s.id] = true; });
      var omitted = rows.map(function (tr) { return parseInt(tr.getAttribute("data-sid"), 10); })
        .filter(function (id) { return !have[id]; }).sort(function (a, b) { return a - b; });
      var doc = { format: document.body.getAttribute("data-format"),
        version: parseInt(document.body.getAttribute("data-version"), 10), sessions: sessions,
        capture: JSON.parse(document.getElementById("capture-data").textContent) };
      // the report's other top-level keys (findings, stats, filter, ...), in the order analyze writes them
      var extra = JSON.parse(document.getElementById("report-extra").textContent);
      Object.keys(extra).forEach(function (k) {
        if (k !== "format" && k !== "version" && k !== "sessions" && k !== "capture") { doc[k] = extra[k]; }
      });
      if (omitted.length) { doc.html_omitted_sessions = omitted; }
      save(new Blob([JSON.stringify(doc, null, 1)], { type: "application/json" }), "mailtrace-report.json");
    });
  }

  // Embedded attachments: saved as opaque bytes (never shown or opened by the page).
  var files = null;
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest ? ev.target.closest("button.dl") : null;
    if (!b) { return; }
    if (files === null) { files = JSON.parse(document.getElementById("attachment-data").textContent); }
    var key = b.getAttribute("data-src");
    if (!Object.prototype.hasOwnProperty.call(files, key)) { return; }
    var bin = atob(files[key]);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    save(new Blob([bytes], { type: "application/octet-stream" }), b.getAttribute("data-name"));
  });
})();
