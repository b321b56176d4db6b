// The pages' only script and style sheet, served from the binary at /static/ (no CDN,
// no network). The script builds new rows with textContent only: event data is never
// parsed as HTML.
#include "server/web/web_pages.h"

namespace mgreg::web {

const char kAppJs[] = R"JS("use strict";
// Relative times ("3 min ago") of <time class="ago" datetime="...">, kept current.
function ago(date) {
  const s = Math.floor((Date.now() - date.getTime()) / 1000);
  if (s < 0) return "in the future";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 172800) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}
function refreshTimes() {
  for (const t of document.querySelectorAll("time.ago")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = ago(d);
  }
}
function cell(row, text, href) {
  const td = row.insertCell();
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    td.appendChild(a);
  } else {
    td.textContent = text;
  }
  return td;
}
// The events page: ask for events after the last revision shown, add them on top.
function followEvents(table) {
  const status = document.getElementById("live-status");
  const revisionText = document.getElementById("revision");
  const pollMs = parseInt(table.dataset.pollMs, 10) || 1000;
  const model = table.dataset.model;
  let revision = table.dataset.revision;
  async function poll() {
    try {
      let url = "/events?format=json&since=" + encodeURIComponent(revision);
      if (model) url += "&model=" + encodeURIComponent(model);
      const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
      const data = await response.json();
      if (!response.ok) throw new Error(data.error ? data.error.message : response.statusText);
      const body = table.tBodies[0];
      // data.events is newest first: insert oldest first at the top.
      for (let i = data.events.length - 1; i >= 0; --i) {
        const e = data.events[i];
        const row = body.insertRow(0);
        row.dataset.revision = e.revision;
        row.className = "new";
        cell(row, String(e.revision)).className = "num";
        const when = cell(row, "");
        const t = document.createElement("time");
        t.className = "ago";
        t.setAttribute("datetime", e.time);
        t.textContent = ago(new Date(e.time));
        when.appendChild(t);
        cell(row, e.type);
        cell(row, e.model, e.model_href);
        cell(row, String(e.step), e.step_href).className = "num";
        cell(row, e.alias);
      }
      revision = String(data.revision);
      table.dataset.revision = revision;
      revisionText.textContent = revision;
      status.textContent = "live";
      status.className = "";
    } catch (err) {
      status.textContent = "reconnecting (" + err.message + ")";
      status.className = "error";
    }
    setTimeout(poll, pollMs);
  }
  setTimeout(poll, pollMs);
}
document.addEventListener("DOMContentLoaded", () => {
  refreshTimes();
  setInterval(refreshTimes, 10000);
  const events = document.getElementById("events");
  if (events) followEvents(events);
});
)JS";

const char kAppCss[] =
    R"CSS(:root { --fg: #1d2330; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb;
  --bg: #ffffff; --soft: #f5f7fb; --warn: #b91c1c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px;
  background: #111827; color: #fff; }
header a { color: #e5e7eb; text-decoration: none; margin-right: 16px; }
header a:hover { color: #fff; }
header .brand { font-weight: 700; font-size: 16px; color: #fff; }
header form.logout { margin-left: auto; }
main { padding: 16px 24px 48px; max-width: 1200px; }
h1 { font-size: 22px; margin: 8px 0 12px; word-break: break-all; }
h2 { font-size: 17px; margin: 24px 0 8px; }
h3 { font-size: 14px; margin: 12px 0 6px; }
a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; margin: 4px 0 8px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: var(--soft); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.sha { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
td.tensor { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
table.compact { width: auto; min-width: 240px; }
tr.new { background: #ecfdf5; }
.abs, .hint, .crumbs { color: var(--muted); }
.abs { font-size: 12px; }
.error { color: var(--warn); }
.empty { color: var(--muted); font-style: italic; }
.tag { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px;
  background: #eef2ff; color: #3730a3; }
.tag.pinned { background: #fef3c7; color: #92400e; }
.alias { margin-right: 8px; }
.kv { margin-right: 10px; white-space: nowrap; }
.kv .k { color: var(--muted); }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
form.filter, form.export, form.login { display: flex; flex-wrap: wrap; gap: 10px 16px;
  align-items: center; margin: 8px 0 12px; }
input[type=search], input[type=text], input[type=password] { padding: 4px 6px;
  border: 1px solid #cbd5e1; border-radius: 4px; }
button { padding: 4px 12px; border: 1px solid #cbd5e1; border-radius: 4px; background: #fff;
  cursor: pointer; }
.plots { display: flex; flex-wrap: wrap; gap: 16px; }
figure.plot-box { margin: 0; padding: 8px; border: 1px solid var(--line); border-radius: 6px; }
figure.plot-box figcaption { font-weight: 600; margin-bottom: 4px; }
svg.plot .axis { stroke: #9ca3af; fill: none; }
svg.plot .series { stroke: var(--accent); stroke-width: 1.5; }
svg.plot .pt { fill: var(--accent); }
svg.plot .tick { fill: var(--muted); font-size: 11px; }
.columns { display: flex; flex-wrap: wrap; gap: 24px; }
.pages a { margin-right: 16px; }
#live-status { color: #047857; font-weight: 600; }
#live-status.error { color: var(--warn); }
)CSS";

const char kFaviconSvg[] =
    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">"
    "<rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#111827\"/>"
    "<path d=\"M3 12 L6 7 L9 9 L13 4\" stroke=\"#60a5fa\" stroke-width=\"2\" "
    "fill=\"none\"/></svg>";

}  // namespace mgreg::web
