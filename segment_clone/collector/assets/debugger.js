"use strict";
// The collector's debugger page. Event data is only ever put on the page as text (textContent,
// Text nodes, attribute values), never parsed as HTML; the page's CSP enforces it with Trusted
// Types. The server rings /api/stream after each write; the page then asks /api/entries for what
// is new under its filters, which live in the URL under the names the API uses.
(() => {
  const FILTERS = ["q", "type", "event", "user", "source", "valid"];
  const PAGE = 50;
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const form = $("filters");
  const pauseButton = $("pause");
  const newCount = $("new-count");

  const state = {
    paused: false,
    pausedAfter: 0, // the newest id on screen when Pause was pressed
    page: "newest", // "newest" follows arrivals; other pages stay as they are
    shown: [], // the entries on screen, newest first
    start: 1, // position of shown[0] among the matches, newest first
    total: 0,
    epoch: null,
    plan: null,
    selected: null,
    tab: "raw",
    reload: true,
  };

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    node.append(...children.map((c) => (c instanceof Node ? c : String(c))));
    return node;
  }

  function parse(raw) {
    try {
      return JSON.parse(raw);
    } catch {
      return {};
    }
  }

  function filters() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function readURL() {
    const params = new URLSearchParams(location.search);
    for (const name of FILTERS) form.elements[name].value = params.get(name) || "";
  }

  function writeURL() {
    const query = filters().toString();
    history.replaceState(null, "", query ? "?" + query : location.pathname);
  }

  async function api(path, params) {
    const response = await fetch(path + "?" + params, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.message || response.statusText);
    return body;
  }

  function entriesQuery(extra) {
    const params = filters();
    for (const [name, value] of Object.entries(extra)) params.set(name, value);
    return api("/api/entries", params);
  }

  // -- the list ---------------------------------------------------------------------------------

  async function showPage(kind) {
    const oldest = state.shown.length ? state.shown[state.shown.length - 1].id : 0;
    const newest = state.shown.length ? state.shown[0].id : 0;
    let data;
    if (kind === "older") {
      data = await entriesQuery({ before: oldest, limit: PAGE });
      if (!data.entries.length) return;
      state.start = data.total - data.count + 1;
    } else if (kind === "newer" || kind === "oldest") {
      data = await entriesQuery({ after: kind === "newer" ? newest : 0, order: "asc", limit: PAGE });
      if (!data.entries.length) return;
      data.entries.reverse();
      state.start = data.count - data.entries.length + 1;
      if (state.start === 1 && kind === "newer") kind = "newest";
    } else {
      data = await entriesQuery({ limit: PAGE });
      state.start = 1;
    }
    state.page = kind;
    state.shown = data.entries;
    state.total = data.total;
    render();
  }

  function topId() {
    return state.shown.length ? state.shown[0].id : 0;
  }

  async function followArrivals() {
    const data = await entriesQuery({ after: topId(), limit: PAGE });
    if (data.count > data.entries.length) return showPage("newest");
    state.total = data.total;
    if (data.entries.length) state.shown = data.entries.concat(state.shown).slice(0, PAGE);
    render();
  }

  async function countNew() {
    const data = await entriesQuery({ after: state.pausedAfter, limit: 1 });
    newCount.textContent = data.count ? `${data.count} new` : "0 new";
  }

  function render() {
    $("rows").replaceChildren(...state.shown.map(row));
    const end = state.start + state.shown.length - 1;
    $("range").textContent = state.shown.length
      ? `${state.start.toLocaleString()}–${end.toLocaleString()} of ${state.total.toLocaleString()}, newest first`
      : "no events match";
  }

  function row(entry) {
    const message = parse(entry.raw);
    const name = entry.event ?? message.name ?? message.groupId ?? message.$group_id ?? "";
    const tr = el(
      "tr",
      { "data-id": entry.id, class: entry.id === state.selected ? "selected" : "" },
      el("td", {}, entry.id),
      el("td", { title: entry.received_at }, clock(entry.received_at)),
      el("td", {}, entry.source),
      el("td", {}, entry.type),
      el("td", { class: "name" }, name),
      el("td", { class: "user" }, entry.user ?? ""),
      status(entry),
      el("td", { class: "summary" }, summary(message).slice(0, 160)),
    );
    tr.addEventListener("click", () => openDetail(entry.id));
    return tr;
  }

  function status(entry) {
    if (entry.valid) return el("td", { class: "status good" }, state.plan ? "✓" : "");
    const count = entry.violations.length;
    return el("td", { class: "status bad" }, `✗ ${count} violation${count === 1 ? "" : "s"}`);
  }

  function summary(message) {
    const fields = message.properties ?? message.traits ?? message.$set ?? message.$set_once;
    if (fields === undefined) return "";
    const own = { ...fields };
    if (message.properties && !message.type) {
      for (const key of ["token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version"]) {
        delete own[key];
      }
    }
    return JSON.stringify(own);
  }

  function clock(iso) {
    const at = new Date(iso);
    const pad = (n, width = 2) => String(n).padStart(width, "0");
    return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
  }

  // -- the detail -------------------------------------------------------------------------------

  async function openDetail(id) {
    const entry = await api("/api/entry", new URLSearchParams({ id }));
    state.selected = id;
    for (const tr of $("rows").children) tr.classList.toggle("selected", tr.dataset.id === String(id));
    const name = entry.event ?? parse(entry.raw).name ?? "";
    $("detail-title").textContent = `#${entry.id} ${entry.source} ${entry.type} ${name}`.trim();
    $("tab-raw").textContent = entry.raw;
    $("tab-pretty").textContent = entry.pretty;
    $("tab-delivery").replaceChildren(...delivery(entry.delivery));
    $("tab-violations").replaceChildren(...violations(entry));
    $("detail-links").replaceChildren(...links(entry));
    $("detail-links").hidden = !entry.links.length;
    $("detail").hidden = false;
    showTab(state.tab);
  }

  // The other side of the entry, by $insert_id: the Mixpanel records made from a Segment
  // message, or the Segment message a Mixpanel record was made from.
  function links(entry) {
    if (!entry.links.length) return [];
    const label = entry.source === "segment" ? "Sent to Mixpanel as " : "Made from Segment message ";
    const anchors = entry.links.map((link) => {
      const text = `#${link.id} ${link.source} ${link.type} ${link.event ?? ""}`.trim();
      const anchor = el("a", { href: "#" + link.id, "data-id": link.id }, text);
      anchor.addEventListener("click", (event) => {
        event.preventDefault();
        openDetail(link.id).catch((e) => ($("error").textContent = e.message));
      });
      return anchor;
    });
    return [label, ...anchors.flatMap((anchor, i) => (i ? [", ", anchor] : [anchor]))];
  }

  function delivery(d) {
    const faults = d.faulted_attempts.map((f) => `${f.fault} on ${f.endpoint} at ${f.at}`);
    const pairs = [
      ["endpoint", d.endpoint ?? "unknown (stored before requests were logged)"],
      ["status answered", d.status ?? "unknown"],
      ["gzip", d.gzip === null ? "unknown" : d.gzip ? "yes" : "no"],
      ["batch size", d.batch_size ?? "unknown"],
      ["injected fault", d.fault ?? "none"],
      ["client retry count", d.retry ?? "none"],
      ["duplicate hits", d.duplicates],
      ["earlier attempts failed by fault injection", faults.length ? faults.join("; ") : "none"],
    ];
    return pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]);
  }

  function violations(entry) {
    if (!entry.violations.length) {
      return [el("li", {}, state.plan ? "No violations." : "No tracking plan is loaded.")];
    }
    return entry.violations.map((v) =>
      el("li", {}, el("span", { class: "vtype" }, v.type), " ", el("span", { class: "field" }, v.field), ": ", v.message),
    );
  }

  function showTab(name) {
    state.tab = name;
    for (const button of document.querySelectorAll("nav button")) {
      const selected = button.dataset.tab === name;
      button.setAttribute("aria-selected", String(selected));
      $("tab-" + button.dataset.tab).hidden = !selected;
    }
  }

  // -- the header ------------------------------------------------------------------------------

  async function showStats() {
    const stats = await api("/api/stats", new URLSearchParams());
    state.plan = stats.plan;
    $("plan").textContent = stats.plan
      ? `tracking plan: ${stats.plan.name} · ${stats.plan.rules} rules · ${stats.plan.mode} mode`
      : "no tracking plan";
    $("total").textContent = stats.total.toLocaleString();
    const sources = Object.entries(stats.sources).map(([source, s]) => {
      const types = Object.entries(s.types).map(([type, n]) => `${type} ${n}`).join(", ");
      return `${source} ${s.total} (${types})`;
    });
    $("by-source").textContent = sources.length ? sources.join(" · ") : "none yet";
    $("duplicates").textContent = stats.duplicates.toLocaleString();
    $("invalid").textContent = stats.invalid.toLocaleString();
    const rejected = { 400: 0, 401: 0, 413: 0, ...stats.rejected };
    $("rejected").textContent = Object.entries(rejected).map(([s, n]) => `${s}: ${n}`).join(" · ");
    $("faults").textContent = stats.faults.injected.toLocaleString();
    chart(stats.rate);
  }

  function chart(rate) {
    const height = 40;
    const width = 240 / rate.length;
    const peak = Math.max(1, ...rate);
    const bars = rate.map((n, i) => {
      const bar = document.createElementNS(SVG, "rect");
      const h = n ? Math.max(1, Math.round((n / peak) * (height - 2))) : 0;
      bar.setAttribute("x", String(i * width));
      bar.setAttribute("y", String(height - h));
      bar.setAttribute("width", String(width - 1));
      bar.setAttribute("height", String(h));
      return bar;
    });
    $("chart").replaceChildren(...bars);
    $("rate").textContent = `${rate[rate.length - 1]} events/s now, peak ${Math.max(...rate)} in the last minute`;
  }

  // -- keeping up ------------------------------------------------------------------------------

  let running = false;
  let again = false;

  async function refresh() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await update();
      } while (again);
      $("error").textContent = "";
    } catch (error) {
      $("error").textContent = String(error.message || error);
    } finally {
      running = false;
    }
  }

  async function update() {
    await showStats();
    if (state.reload) {
      state.reload = false;
      await showPage("newest");
      state.pausedAfter = topId();
    } else if (!state.paused && state.page === "newest") {
      await followArrivals();
    }
    if (state.paused) await countNew();
  }

  function reloadList() {
    state.reload = true;
    refresh();
  }

  let typing = null;
  form.addEventListener("input", (event) => {
    clearTimeout(typing);
    const wait = event.target.tagName === "SELECT" ? 0 : 250;
    typing = setTimeout(() => {
      writeURL();
      reloadList();
    }, wait);
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  $("clear").addEventListener("click", () => {
    form.reset();
    writeURL();
    reloadList();
  });
  pauseButton.addEventListener("click", () => {
    state.paused = !state.paused;
    pauseButton.textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) {
      state.pausedAfter = topId();
      newCount.textContent = "0 new";
    } else {
      newCount.textContent = "";
      state.reload = true;
    }
    refresh();
  });
  for (const kind of ["newest", "newer", "older", "oldest"]) {
    $(kind).addEventListener("click", () => showPage(kind).catch((e) => ($("error").textContent = e.message)));
  }
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  $("close").addEventListener("click", () => {
    $("detail").hidden = true;
    state.selected = null;
    render();
  });

  readURL();
  refresh();
  const stream = new EventSource("/api/stream");
  stream.addEventListener("message", (message) => {
    const ring = JSON.parse(message.data);
    if (state.epoch !== null && ring.epoch !== state.epoch) state.reload = true;
    state.epoch = ring.epoch;
    refresh();
  });
  setInterval(() => document.hidden || showStats().catch(() => {}), 2000);
})();
