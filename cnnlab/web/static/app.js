// cnnlab serve: the page. Plain JavaScript, no build step.
// Views (from the URL hash): #/zoo, #/model/NAME, #/runs, #/runs/RUN-ID, #/playground, #/compare.
// Libraries: uPlot (charts) and onnxruntime-web (the playground), served from /static/vendor.
"use strict";

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmtInt = (n) => (n == null ? "" : Math.round(n).toLocaleString("en-US"));
const fmtPct = (f) => (f == null ? "" : (100 * f).toFixed(2) + "%");
const fmtNum = (x, d = 4) => (x == null ? "" : Number(x).toPrecision(d));
function fmtBytes(b) {
  if (b == null) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (b >= 1000 && i < units.length - 1) { b /= 1000; i++; }
  return b.toFixed(i ? 1 : 0) + " " + units[i];
}
function fmtShort(n) {
  if (n == null) return "";
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(2) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return String(n);
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

let teardown = [];          // what the current view must stop when the user leaves it
function onLeave(fn) { teardown.push(fn); }

function chart(el, title, labels, opts = {}) {
  // A uPlot line (or bar) chart; returns {set(xs, ys[])}.
  const colors = ["#2f5fd0", "#d0542f", "#1a9c5b", "#8e44ad", "#c79a00"];
  const series = [{ label: opts.xLabel || "x" }].concat(labels.map((l, i) => ({
    label: l, stroke: colors[i % colors.length], width: 2,
    fill: opts.bars ? colors[i % colors.length] + "99" : undefined,
    paths: opts.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
    points: { show: !opts.bars },
    spanGaps: true,
  })));
  const u = new uPlot({
    title, width: opts.width || 460, height: opts.height || 240, series,
    scales: { x: { time: false } },
    axes: [{ values: opts.xValues }, { size: 60, values: opts.yValues }],
    legend: { show: labels.length > 1 || !!opts.legend },
  }, [[]].concat(labels.map(() => [])), el);
  return { u, set(xs, ys) { u.setData([xs].concat(ys)); } };
}

function sortableTable(columns, rows, { rowAttrs, initial } = {}) {
  // columns: [{key, label, num, render(row), sortValue(row)}]
  let sortKey = initial ? initial.key : null, dir = initial ? initial.dir : 1;
  const thead = h("thead"), tbody = h("tbody"), table = h("table", {}, thead, tbody);
  function draw(list) {
    const col = columns.find((c) => c.key === sortKey);
    const value = (r) => (col && col.sortValue ? col.sortValue(r) : r[sortKey]);
    const sorted = col ? list.slice().sort((a, b) => {
      const x = value(a), y = value(b);
      if (x == null && y == null) return 0;
      if (x == null) return 1;
      if (y == null) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    }) : list;
    thead.replaceChildren(h("tr", {}, columns.map((c) => h("th", {
      class: "sortable" + (c.num ? " num" : "") + (c.key === sortKey ? (dir > 0 ? " sorted-asc" : " sorted-desc") : ""),
      "data-key": c.key,
      onclick: () => { dir = c.key === sortKey ? -dir : 1; sortKey = c.key; draw(current); },
    }, c.label))));
    tbody.replaceChildren(...sorted.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {},
      columns.map((c) => h("td", { class: c.num ? "num" : "", "data-field": c.key },
        c.render ? c.render(r) : (r[c.key] ?? ""))))));
  }
  let current = rows;
  draw(rows);
  return { table, update(list) { current = list; draw(list); } };
}

// ---------------------------------------------------------------- zoo

async function viewZoo(root) {
  root.append(h("h1", {}, "Zoo"), h("p", { class: "muted", id: "zoo-status" }, "loading…"));
  let data = await getJSON("/api/models");
  const families = [...new Set(data.models.map((m) => m.family))].sort();
  const text = h("input", { type: "search", id: "zoo-filter", placeholder: "name, paper…" });
  const fam = h("select", { id: "zoo-family" }, h("option", { value: "" }, "all"),
    families.map((f) => h("option", { value: f }, f)));
  const yearMin = h("input", { type: "number", id: "zoo-year-min", placeholder: "from", style: "width:6em" });
  const yearMax = h("input", { type: "number", id: "zoo-year-max", placeholder: "to", style: "width:6em" });
  const columns = [
    { key: "name", label: "model", render: (m) => h("a", { href: "#/model/" + m.name }, m.name) },
    { key: "family", label: "family" },
    { key: "year", label: "year", num: true },
    { key: "params", label: "params", num: true, render: (m) => (m.params != null ? fmtInt(m.params) : h("span", { class: "muted" }, "…")) },
    { key: "macs", label: "MACs", num: true,
      render: (m) => (m.macs != null ? fmtInt(m.macs) : m.macs_error ? h("span", { class: "error", title: m.macs_error }, "n/a") : h("span", { class: "muted" }, "…")) },
    { key: "input", label: "input", sortValue: (m) => m.input_size[1] * m.input_size[2],
      render: (m) => m.input_size.join("x") },
    { key: "dataset", label: "data" },
    { key: "weights", label: "weights", sortValue: (m) => (m.weights && m.weights.length) || null,
      render: (m) => (m.weights && m.weights.length ? h("span", { title: "published checkpoints: " + m.weights.join(", ") +
        " (cnnlab weights " + m.name + ")" }, m.weights[0] + (m.weights.length > 1 ? ` +${m.weights.length - 1}` : "")) : "") },
    { key: "acc", label: "published accuracy",
      sortValue: (m) => (m.published_top1 != null ? m.published_top1 : m.published_error != null ? 100 - m.published_error : null),
      render: (m) => m.published },
  ];
  const table = sortableTable(columns, data.models, { rowAttrs: (m) => ({ "data-model": m.name }) });
  const status = document.getElementById("zoo-status");
  function filtered() {
    const q = text.value.trim().toLowerCase(), f = fam.value;
    const lo = Number(yearMin.value) || -Infinity, hi = Number(yearMax.value) || Infinity;
    return data.models.filter((m) => (!f || m.family === f) && m.year >= lo && m.year <= hi &&
      (!q || (m.name + " " + m.paper + " " + m.family).toLowerCase().includes(q)));
  }
  function refresh() {
    const list = filtered();
    table.update(list);
    status.textContent = `${list.length} of ${data.models.length} models` +
      (data.macs_done < data.total ? ` · computing MACs with cnnlab.analyze: ${data.macs_done}/${data.total}` : ` · MACs: ${data.macs_note}`);
  }
  for (const el of [text, fam, yearMin, yearMax]) el.addEventListener("input", refresh);
  root.append(h("div", { class: "controls" },
    h("label", {}, "filter", text), h("label", {}, "family", fam),
    h("label", {}, "year from", yearMin), h("label", {}, "to", yearMax)),
  h("div", { class: "tablewrap" }, table.table));
  refresh();
  let timer = null;
  const poll = async () => {
    if (data.macs_done >= data.total && data.models.every((m) => m.params != null || m.macs_error)) return;
    try { data = await getJSON("/api/models"); refresh(); } catch (e) { /* next time */ }
    timer = setTimeout(poll, 1500);
  };
  timer = setTimeout(poll, 1500);
  onLeave(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- model

async function viewModel(root, name, params) {
  const size = params.get("size") || "", batch = params.get("batch") || "1", depth = params.get("depth") || "2";
  root.append(h("h1", {}, "Model ", h("span", { id: "model-name" }, name)));
  const sizeIn = h("input", { id: "model-size", value: size, placeholder: "default", style: "width:9em" });
  const batchIn = h("input", { id: "model-batch", type: "number", min: 1, value: batch, style: "width:6em" });
  const depthIn = h("select", { id: "model-depth" }, [1, 2, 3, 4, 99].map((d) =>
    h("option", { value: d, selected: String(d) === depth }, d === 99 ? "all" : String(d))));
  const go = () => { location.hash = `#/model/${encodeURIComponent(name)}?size=${encodeURIComponent(sizeIn.value.trim())}&batch=${encodeURIComponent(batchIn.value)}&depth=${depthIn.value}`; };
  root.append(h("div", { class: "controls" },
    h("label", {}, "input size (H, HxW or CxHxW)", sizeIn), h("label", {}, "batch", batchIn),
    h("label", {}, "table depth", depthIn), h("button", { id: "model-go", onclick: go }, "analyze")));
  depthIn.addEventListener("change", go);
  const out = h("div", { id: "model-body" }, h("p", { class: "muted" }, "analyzing…"));
  root.append(out);
  let a;
  try {
    a = await getJSON(`/api/analyze?model=${encodeURIComponent(name)}&input_size=${encodeURIComponent(size)}&batch_size=${encodeURIComponent(batch)}`);
  } catch (e) {
    out.replaceChildren(h("p", { class: "error", id: "model-error" }, e.message));
    return;
  }
  const t = a.totals, tr = t.training || {};
  const summary = h("table", { id: "model-totals" },
    [["input (batch x C x H x W)", a.input_shape.join(" x "), "input"],
     ["parameters", fmtInt(t.params), "params"],
     ["MACs per image", fmtInt(t.macs), "macs"],
     ["forward values per image", fmtInt(t.forward_values), "forward_values"],
     ["forward memory at this batch", fmtBytes(t.forward_bytes_batch), "forward_bytes_batch"],
     ["training memory estimate at this batch", fmtBytes(tr.total_bytes), "training_total_bytes"]]
      .map(([k, v, f]) => h("tr", {}, h("th", {}, k), h("td", { class: "num", "data-field": f }, v))));
  const maxDepth = Number(depth);
  const rows = a.layers.filter((l) => l.depth <= maxDepth);
  const table = h("table", { id: "layer-table" },
    h("thead", {}, h("tr", {}, ["layer", "type", "output (per image)", "params", "MACs", "memory (values)", "memory (bytes)", "receptive field"]
      .map((c, i) => h("th", { class: i >= 3 ? "num" : "" }, c)))),
    h("tbody", {}, rows.map((l) => h("tr", { "data-layer": l.name },
      h("td", { style: `padding-left:${0.6 + (l.depth - 1) * 1.2}em` }, l.name),
      h("td", {}, l.type),
      h("td", { "data-field": "output_shape" }, (l.output_shape || []).slice(1).join("x")),
      h("td", { class: "num", "data-field": "params" }, fmtInt(l.params)),
      h("td", { class: "num", "data-field": "macs" }, fmtInt(l.macs)),
      h("td", { class: "num", "data-field": "memory" }, fmtInt(l.memory)),
      h("td", { class: "num", "data-field": "memory_bytes" }, fmtInt(l.memory_bytes)),
      h("td", { class: "num", "data-field": "receptive_field" }, l.receptive_field ?? "")))));
  const leaves = a.layers.filter((l) => l.leaf);
  const charts = h("div", { class: "charts" });
  out.replaceChildren(summary, h("h2", {}, "Where memory and parameters sit along the depth"), charts,
    h("h2", {}, `Layers (depth ≤ ${maxDepth === 99 ? "all" : maxDepth}; ${rows.length} rows)`), h("div", { class: "tablewrap" }, table),
    h("p", { class: "muted" }, Object.entries(a.conventions || {}).map(([k, v]) => `${k}: ${v}`).join(" · ")));
  const xs = leaves.map((_, i) => i);
  const names = (u, vals) => vals.map((v) => (leaves[v] ? leaves[v].name.split(".").slice(-2).join(".") : ""));
  const opts = { bars: true, width: Math.min(900, Math.max(460, leaves.length * 12)), xValues: names, yValues: (u, v) => v.map(fmtShort), xLabel: "layer" };
  const mem = h("div", { class: "chart", id: "chart-memory" }), par = h("div", { class: "chart", id: "chart-params" });
  charts.append(mem, par);
  chart(mem, "memory: values each layer writes, per image", ["memory"], opts).set(xs, [leaves.map((l) => l.memory)]);
  chart(par, "parameters per layer", ["params"], opts).set(xs, [leaves.map((l) => l.params)]);
}

// ---------------------------------------------------------------- runs

async function viewRuns(root) {
  root.append(h("h1", {}, "Runs"));
  const data = await getJSON("/api/runs");
  if (!data.runs.length) {
    root.append(h("p", { id: "runs-empty" }, `No runs in ${data.folder} yet. Start one with `,
      h("code", {}, `cnnlab train lenet5 --out ${data.folder}/lenet5`), " and it appears here."));
    const timer = setTimeout(() => route(), 3000);
    onLeave(() => clearTimeout(timer));
    return;
  }
  const columns = [
    { key: "id", label: "run", render: (r) => h("a", { href: "#/runs/" + r.id }, r.id) },
    { key: "model", label: "model" }, { key: "dataset", label: "data" },
    { key: "status", label: "status", render: (r) => h("span", { class: "badge " + r.status }, r.status) },
    { key: "epochs_done", label: "epochs", num: true, render: (r) => `${r.epochs_done}${r.epochs_planned ? " / " + r.epochs_planned : ""}` },
    { key: "test_top1", label: "test top-1", num: true, render: (r) => fmtPct(r.test_top1) },
    { key: "val_top1", label: "val top-1", num: true, render: (r) => fmtPct(r.val_top1) },
    { key: "best_top1", label: "best top-1", num: true, render: (r) => (r.best_top1 == null ? "" : `${fmtPct(r.best_top1)} (${r.best_on})`) },
    { key: "images_per_second", label: "images/s", num: true, render: (r) => fmtInt(r.images_per_second) },
    { key: "modified", label: "modified", render: (r) => new Date(r.modified * 1000).toLocaleString() },
  ];
  root.append(h("p", { class: "muted" }, `${data.runs.length} run(s) in ${data.folder}`),
    sortableTable(columns, data.runs, { rowAttrs: (r) => ({ "data-run": r.id }) }).table);
  if (data.runs.some((r) => r.status === "running")) {  // keep epochs and status current
    const timer = setTimeout(() => route(), 5000);
    onLeave(() => clearTimeout(timer));
  }
}

async function viewRun(root, id) {
  root.append(h("h1", {}, "Run ", h("span", {}, id)));
  const info = await getJSON("/api/run?id=" + encodeURIComponent(id));
  const s = info.summary;
  const status = h("span", { id: "run-status", class: "badge " + s.status }, s.status);
  root.append(h("p", {}, `${s.model || "?"} on ${s.dataset || "?"}`, s.recipe ? ` · recipe ${s.recipe}` : "", " · ", status,
    s.checkpoint ? " · checkpoint " + s.checkpoint : ""));
  const view = h("div", { id: "run-view", "data-points": 0 });
  const charts = h("div", { class: "charts" });
  const last = h("p", { id: "run-last", class: "muted" });
  view.append(last, charts);
  root.append(view);
  const resultsLine = h("p", { id: "run-results" });
  view.append(resultsLine);
  function showResults(res) {
    if (!res || !res.test) return;
    const val = res.val || null;
    resultsLine.textContent = `results: test top-1 ${fmtPct(res.test.top1)}, top-5 ${fmtPct(res.test.top5)}, ` +
      `loss ${fmtNum(res.test.loss)}` + (val ? ` · validation top-1 ${fmtPct(val.top1)}` : "") +
      (res.best_epoch != null ? ` · best epoch ${res.best_epoch}` : "") + ` · ${fmtNum(res.wall_seconds, 3)} s`;
  }
  showResults(info.results);
  const box = () => { const d = h("div", { class: "chart" }); charts.append(d); return d; };
  const loss = chart(box(), "loss", ["train", "test", "val"], { xLabel: "epoch" });
  const acc = chart(box(), "top-1 accuracy (%)", ["train", "test", "val"], { xLabel: "epoch" });
  const lr = chart(box(), "learning rate", ["lr"], { xLabel: "epoch", yValues: (u, v) => v.map((x) => x.toExponential(1)) });
  const speed = chart(box(), "training throughput (images/s)", ["images/s"], { xLabel: "epoch" });
  let epochs = [];
  const pct = (v) => (v == null ? null : 100 * v);
  function draw() {
    const xs = epochs.map((r) => r.epoch);
    loss.set(xs, [epochs.map((r) => r.train_loss ?? null), epochs.map((r) => r.test_loss ?? null), epochs.map((r) => r.val_loss ?? null)]);
    acc.set(xs, [epochs.map((r) => pct(r.train_top1)), epochs.map((r) => pct(r.test_top1)), epochs.map((r) => pct(r.val_top1))]);
    lr.set(xs, [epochs.map((r) => r.lr ?? null)]);
    speed.set(xs, [epochs.map((r) => r.images_per_second ?? null)]);
    view.setAttribute("data-points", String(epochs.length));
    const r = epochs[epochs.length - 1];
    if (r) last.textContent = `epoch ${r.epoch}: train loss ${fmtNum(r.train_loss)}, train ${fmtPct(r.train_top1)}` +
      (r.val_top1 != null ? `, val ${fmtPct(r.val_top1)}` : "") + (r.test_top1 != null ? `, test ${fmtPct(r.test_top1)}` : "") +
      `, lr ${r.lr != null ? Number(r.lr).toExponential(2) : "?"}, ${fmtInt(r.images_per_second)} images/s`;
  }
  function add(rec) { if (rec.kind === "epoch") { epochs.push(rec); draw(); } }
  const layers = layersView();
  root.append(layers.el);
  if (s.status === "running" || s.status === "stopped") {
    // Live: the server streams metrics.jsonl (and layers.jsonl) from their start and then as they grow.
    const es = new EventSource("/api/run/events?id=" + encodeURIComponent(id));
    es.addEventListener("record", (e) => add(JSON.parse(e.data)));
    es.addEventListener("restart", () => { epochs = []; draw(); });
    es.addEventListener("layers", (e) => layers.add(JSON.parse(e.data)));
    es.addEventListener("layers-restart", () => layers.reset());
    es.addEventListener("done", async () => {
      es.close();
      status.textContent = "finished"; status.className = "badge finished";
      try { showResults((await getJSON("/api/run?id=" + encodeURIComponent(id))).results); } catch (e) { /* shown on reload */ }
    });
    es.onerror = () => { status.textContent = s.status + " (reconnecting)"; };
    onLeave(() => es.close());
  } else {
    info.records.forEach(add);
    draw();
    (await getJSON("/api/run/layers?id=" + encodeURIComponent(id))).records.forEach(layers.add);
  }
  root.append(h("h2", {}, "config.json"), h("pre", { class: "tablewrap" }, JSON.stringify(info.config, null, 2)));
}

function layersView() {
  // What `cnnlab train --layer-stats N` writes to layers.jsonl: per-layer statistics
  // (first record vs latest, and a table), the first layer's filters, top-3 predictions.
  const el = h("section", { id: "layers-view", "data-records": 0, hidden: true });
  let meta = null, first = null, latest = null, count = 0, charts = null, pending = null;
  const note = h("p", { class: "muted", id: "layers-note" });
  const chartBox = h("div", { class: "charts" });
  const table = h("div", { class: "tablewrap", id: "layers-table" });
  const filters = h("div", { id: "layer-filters", class: "filters" });
  const filtersNote = h("p", { class: "muted", id: "layer-filters-note" });
  const preds = h("div", { id: "layer-preds", class: "preds" });
  const predsNote = h("p", { class: "muted", id: "layer-preds-note" });
  el.append(h("h2", {}, "Layers"), note, chartBox, table,
    h("h2", {}, "First-layer filters"), filtersNote, filters,
    h("h2", {}, "Held-out images: top-3 predictions"), predsNote, preds);
  const short = (name) => name.split(".").slice(-2).join(".");
  const names = () => (meta ? meta.layers.map((l) => l.name) : []);

  function makeCharts() {
    chartBox.replaceChildren();
    const n = names().length;
    const opts = { xLabel: "layer", legend: true, width: Math.min(900, Math.max(460, n * 14)),
      xValues: (u, vals) => vals.map((v) => (Number.isInteger(v) && names()[v] ? short(names()[v]) : "")) };
    const box = (cid) => { const d = h("div", { class: "chart", id: cid }); chartBox.append(d); return d; };
    charts = {
      wstd: chart(box("chart-layer-wstd"), "weight std per layer", ["first", "latest"], opts),
      astd: chart(box("chart-layer-astd"), "activation std per layer (fixed batch)", ["first", "latest"], opts),
      grad: chart(box("chart-layer-grad"), "gradient norm per layer (latest)", ["grad norm"], opts),
    };
  }

  function drawStats() {
    if (!meta || !latest) return;
    if (!charts) makeCharts();
    const xs = names().map((_, i) => i);
    const col = (r, k) => xs.map((i) => (r && r[k] ? r[k][i] ?? null : null));
    charts.wstd.set(xs, [col(first, "weight_std"), col(latest, "weight_std")]);
    charts.astd.set(xs, [col(first, "act_std"), col(latest, "act_std")]);
    charts.grad.set(xs, [col(latest, "grad_norm")]);
    const pct = (v) => (v == null ? "" : (100 * v).toFixed(1) + "%");
    table.replaceChildren(h("table", {},
      h("thead", {}, h("tr", {}, ["layer", "type", "weights", "w mean", "w std", "w norm", "grad norm", "act mean", "act std", "zeros", "≤ 0"]
        .map((c, i) => h("th", { class: i >= 2 ? "num" : "" }, c)))),
      h("tbody", {}, meta.layers.map((l, i) => h("tr", { "data-layer": l.name },
        h("td", {}, l.name), h("td", {}, l.type), h("td", { class: "num" }, fmtInt(l.weights)),
        ["weight_mean", "weight_std", "weight_norm", "grad_norm", "act_mean", "act_std"].map((k) =>
          h("td", { class: "num", "data-field": k }, fmtNum(latest[k][i]))),
        h("td", { class: "num", "data-field": "act_zeros" }, pct(latest.act_zeros[i])),
        h("td", { class: "num", "data-field": "act_nonpos" }, pct(latest.act_nonpos[i])))))));
    note.textContent = `${meta.layers.length} layers, recorded every ${meta.every} steps and at each epoch's end; ` +
      `latest: epoch ${latest.epoch}, step ${latest.step} (${latest.at}); first: step ${first.step}. Activations: ` +
      meta.notes.activations + "." + (meta.omitted.length ? ` Not recorded (over ${meta.max_layers} layers): ${meta.omitted.length}: ` +
      meta.omitted.slice(0, 20).join(", ") + (meta.omitted.length > 20 ? ", …" : "") : "");
  }

  function drawFilters(r) {
    const [n, c, kh, kw] = r.shape, scale = Math.max(4, Math.ceil(40 / Math.max(kh, kw)));
    filters.replaceChildren();
    for (let f = 0; f < n; f++) {
      const cv = h("canvas", { width: kw, height: kh, style: `width:${kw * scale}px;height:${kh * scale}px`, title: `filter ${f}` });
      const g = cv.getContext("2d"), im = g.createImageData(kw, kh);
      for (let k = 0; k < kh * kw; k++) {
        for (let ch = 0; ch < 3; ch++) im.data[4 * k + ch] = r.values[((f * c) + (c === 3 ? ch : 0)) * kh * kw + k];
        im.data[4 * k + 3] = 255;
      }
      g.putImageData(im, 0, 0);
      filters.append(cv);
    }
    filtersNote.textContent = `${r.layer}: ${n}${r.filters_total > n ? " of " + r.filters_total : ""} filters ` +
      `${kh}x${kw}${c === 3 ? " (RGB)" : r.channels !== "as is" ? " (" + r.channels + ")" : ""} at epoch ${r.epoch}, step ${r.step}; ` +
      `weights ${fmtNum(r.range[0], 3)} … ${fmtNum(r.range[1], 3)} shown as black … white`;
  }

  function drawPreds(r) {
    if (!meta) { pending = r; return; }
    const classes = meta.classes, byIndex = new Map(meta.images.map((im) => [im.index, im]));
    preds.replaceChildren(...r.items.map((it) => {
      const im = byIndex.get(it.index), card = h("div", { class: "pred", "data-index": it.index });
      if (im) {
        const [c, hh, ww] = im.shape, cv = h("canvas", { width: ww, height: hh, style: `width:${ww * Math.max(1, Math.floor(64 / ww))}px` });
        const g = cv.getContext("2d"), data = g.createImageData(ww, hh);
        for (let k = 0; k < hh * ww; k++) {
          for (let ch = 0; ch < 3; ch++) data.data[4 * k + ch] = im.pixels[(c === 3 ? ch : 0) * hh * ww + k];
          data.data[4 * k + 3] = 255;
        }
        g.putImageData(data, 0, 0);
        card.append(cv);
      }
      const right = it.top.length && it.top[0][0] === it.label;
      card.append(h("div", { class: right ? "truth right" : "truth wrong" }, `label ${classes[it.label] ?? it.label}`),
        h("div", { class: "bars" }, it.top.map(([k, p]) => h("div", { "data-class": classes[k] ?? k },
          h("b", { class: "cls", title: classes[k] ?? k }, classes[k] ?? k),
          h("span", { class: "bar" + (k === it.label ? " hit" : ""), style: `width:${Math.max(1, Math.round((p || 0) * 90))}px` }),
          h("span", {}, p == null ? "?" : (100 * p).toFixed(1) + "%")))));
      return card;
    }));
    const hits = r.items.filter((it) => it.top.length && it.top[0][0] === it.label).length;
    predsNote.textContent = `epoch ${r.epoch} (step ${r.step}): ${hits} of ${r.items.length} right at top-1; ` +
      `${meta.batch.source} images, the trained weights in eval mode`;
  }

  return {
    el,
    add(r) {
      if (r.kind === "layers_meta") {
        meta = r; charts = null; el.hidden = false;
        if (!meta.first_conv) filtersNote.textContent = "this model has no convolution";
        if (pending) { const p = pending; pending = null; drawPreds(p); }
      }
      else if (r.kind === "layers") { if (!first) first = r; latest = r; count++; el.setAttribute("data-records", String(count)); }
      else if (r.kind === "filters") { drawFilters(r); return; }
      else if (r.kind === "predictions") { drawPreds(r); return; }
      else return;
      drawStats();
    },
    reset() { meta = first = latest = charts = pending = null; count = 0; el.setAttribute("data-records", "0"); },
  };
}

// ---------------------------------------------------------------- playground

const playground = { session: null, info: null, logits: null, outputs: null, ready: false, error: null };
window.cnnlabPlayground = playground;

async function viewPlayground(root) {
  root.append(h("h1", {}, "Playground"));
  const info = await getJSON("/api/playground");
  if (!info.available) { root.append(h("p", { id: "pg-unavailable" }, info.message)); return; }
  playground.info = info;
  const [, c, nh, nw] = info.input_shape;
  // How much of the image a digit fills: MNIST centres a 20x20 box in 28x28 (LeCun et al.);
  // the 8x8 UCI digits fill nearly all of it.
  const fill = nh >= 16 ? 20 / 28 : 0.87;
  root.append(h("p", { class: "muted" }, `${info.model} from ${info.checkpoint} (epoch ${info.epoch}), exported to ONNX ` +
    `(${fmtBytes(info.onnx_bytes)}; on export onnxruntime matched PyTorch to ${fmtNum(info.parity.max_abs_diff, 2)}) and run ` +
    `in this page by onnxruntime-web (wasm). Draw a digit or pick a test image: the ${c}x${nh}x${nw} image is ` +
    `${info.preprocess.plan === "pad" ? "padded" : "resized"} and normalised inside the graph as the test loader does.`));
  const pad = h("canvas", { id: "pad", width: 224, height: 224 });
  const preview = h("canvas", { id: "pg-input", width: nw, height: nh, style: "width:96px;height:96px;image-rendering:pixelated;border:1px solid #ccc" });
  const samples = h("div", { class: "samples", id: "pg-samples" });
  const topk = h("div", { class: "bars", id: "pg-topk" });
  const layers = h("div", { id: "pg-layers" });
  const status = h("p", { id: "pg-status", class: "muted" }, "loading the model…");
  root.append(h("div", { class: "pg" },
    h("div", {}, pad, h("div", {}, h("button", { id: "pg-clear", onclick: () => clearPad() }, "clear"))),
    h("div", {}, h("div", { class: "muted" }, "model input (native size)"), preview,
      h("div", { class: "muted" }, "test images"), samples),
    h("div", {}, h("h2", {}, "top-k"), topk, status)),
  h("h2", {}, "Activations, layer by layer (computed in this page)"), layers);

  const ctx = pad.getContext("2d", { willReadFrequently: true });
  function clearPad() { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, pad.width, pad.height); }
  clearPad();
  let drawing = false, lastPt = null;
  const pos = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
  pad.addEventListener("pointerdown", (e) => { drawing = true; lastPt = pos(e); pad.setPointerCapture(e.pointerId); });
  pad.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = pos(e);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 20; ctx.lineCap = "round";
    ctx.beginPath(); ctx.moveTo(...lastPt); ctx.lineTo(...p); ctx.stroke();
    lastPt = p;
  });
  pad.addEventListener("pointerup", () => { if (drawing) { drawing = false; run(padPixels()); } });

  function padPixels() {
    // The drawing, cropped to a square around the ink and box-averaged down to the
    // native size, on the 0-255 scale (ink bright, as in the digits data).
    const img = ctx.getImageData(0, 0, pad.width, pad.height).data;
    let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
    for (let y = 0; y < pad.height; y++) for (let x = 0; x < pad.width; x++) {
      if (img[4 * (y * pad.width + x)] > 0) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
    const out = new Array(c * nh * nw).fill(0);
    if (x1 < 0) return out;
    const side = Math.max(x1 - x0 + 1, y1 - y0 + 1) / fill;
    const cx = (x0 + x1 + 1) / 2, cy = (y0 + y1 + 1) / 2;
    let peak = 0;
    const vals = [];
    for (let i = 0; i < nh; i++) for (let j = 0; j < nw; j++) {
      const ya = cy - side / 2 + (i * side) / nh, yb = ya + side / nh;
      const xa = cx - side / 2 + (j * side) / nw, xb = xa + side / nw;
      let sum = 0, n = 0;
      for (let y = Math.floor(ya); y < Math.ceil(yb); y++) for (let x = Math.floor(xa); x < Math.ceil(xb); x++) {
        n++;
        if (x >= 0 && y >= 0 && x < pad.width && y < pad.height) sum += img[4 * (y * pad.width + x)];
      }
      const v = n ? sum / n : 0;
      vals.push(v);
      peak = Math.max(peak, v);
    }
    for (let k = 0; k < nh * nw; k++) for (let ch = 0; ch < c; ch++) out[ch * nh * nw + k] = Math.round((255 * vals[k]) / (peak || 1));
    return out;
  }

  function drawGray(canvas, values, w, hgt, lo, hi) {
    const g = canvas.getContext("2d"), im = g.createImageData(w, hgt), span = hi - lo || 1;
    for (let k = 0; k < w * hgt; k++) {
      const v = Math.round((255 * (values[k] - lo)) / span);
      im.data[4 * k] = im.data[4 * k + 1] = im.data[4 * k + 2] = v; im.data[4 * k + 3] = 255;
    }
    g.putImageData(im, 0, 0);
  }

  for (const sm of info.samples) {
    const cv = h("canvas", { width: sm.shape[2], height: sm.shape[1], title: `test image ${sm.index}, label ${info.classes[sm.label]}`, "data-index": sm.index });
    drawGray(cv, sm.pixels, sm.shape[2], sm.shape[1], 0, 255);
    cv.addEventListener("click", () => run(sm.pixels));
    samples.append(cv);
  }
  if (!info.samples.length) samples.append(h("span", { class: "muted" }, `(${info.dataset}'s test split is not on disk)`));

  async function run(pixels) {
    if (!playground.session) return;
    drawGray(preview, pixels, nw, nh, 0, 255);
    const x = new ort.Tensor("float32", Float32Array.from(pixels), info.input_shape);
    const res = await playground.session.run({ [info.input_name]: x });
    const logits = Array.from(res.logits.data);
    playground.logits = logits;
    playground.outputs = res;
    const m = Math.max(...logits), ex = logits.map((v) => Math.exp(v - m)), z = ex.reduce((a, b) => a + b, 0);
    const probs = ex.map((v) => v / z);
    const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, 5);
    topk.replaceChildren(...order.map((i) => h("div", { "data-class": info.classes[i] },
      h("b", { style: "width:2.5em;display:inline-block" }, info.classes[i]),
      h("span", { class: "bar", style: `width:${Math.max(1, Math.round(probs[i] * 200))}px` }),
      h("span", {}, `${(100 * probs[i]).toFixed(1)}%`), h("span", { class: "muted" }, `logit ${logits[i].toFixed(3)}`))));
    layers.replaceChildren();
    for (const o of info.outputs.slice(1)) {
      const t = res[o.name], d = t.dims, data = t.data;
      let lo = Infinity, hi = -Infinity;
      for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      const maps = h("div", { class: "maps" });
      if (d.length === 4) {
        const [, ch, hh, ww] = d, scale = Math.max(2, Math.ceil(48 / Math.max(hh, ww)));
        for (let k = 0; k < ch; k++) {
          const cv = h("canvas", { width: ww, height: hh, style: `width:${ww * scale}px;height:${hh * scale}px` });
          drawGray(cv, data.subarray(k * hh * ww, (k + 1) * hh * ww), ww, hh, lo, hi);
          maps.append(cv);
        }
      } else {
        const n = data.length, cv = h("canvas", { width: n, height: 1, style: `width:${Math.min(600, n * 6)}px;height:16px` });
        drawGray(cv, data, n, 1, lo, hi);
        maps.append(cv);
      }
      layers.append(h("div", { class: "layer", "data-layer": o.name },
        h("div", {}, h("b", {}, o.name), h("span", { class: "muted" }, ` ${d.slice(1).join("x")} · range ${lo.toFixed(2)} … ${hi.toFixed(2)}`)), maps));
    }
    status.textContent = "computed in the browser by onnxruntime-web";
  }
  playground.run = run;

  try {
    ort.env.wasm.numThreads = 1;             // no SharedArrayBuffer needed (no cross-origin isolation)
    ort.env.wasm.wasmPaths = "/static/vendor/";
    const buf = await (await fetch("/api/playground/model.onnx")).arrayBuffer();
    playground.session = await ort.InferenceSession.create(buf, { executionProviders: ["wasm"] });
    playground.ready = true;
    status.textContent = "ready: draw a digit or click a test image";
    if (info.samples.length) await run(info.samples[0].pixels);
  } catch (e) {
    playground.error = String(e);
    status.textContent = "could not start onnxruntime-web: " + e;
    status.className = "error";
  }
}

// ---------------------------------------------------------------- compare

async function viewCompare(root) {
  root.append(h("h1", {}, "Compare"));
  const data = await getJSON("/api/compare");
  if (!data.files.length && !data.figures.length) {
    root.append(h("p", { id: "compare-empty" }, "No results yet. ",
      h("span", { class: "muted" }, `Saved bench/compare results (*.jsonl, *.json, *.png) in ${data.folder || "the results folder"} ` +
        "show up here (cnnlab serve --results DIR).")));
    return;
  }
  root.append(h("p", { class: "muted" }, `from ${data.folder}`));
  if (data.figures.length) {
    root.append(h("div", { class: "charts", id: "compare-figures" }, data.figures.map((f) =>
      h("figure", { class: "chart" }, h("img", { src: "/api/compare/figure?name=" + encodeURIComponent(f), alt: f, style: "max-width:560px" }),
        h("figcaption", { class: "muted" }, f)))));
  }
  for (const f of data.files) {
    const keys = [...new Set(f.records.flatMap((r) => Object.keys(r)))].filter((k) => f.records.some((r) => r[k] != null && typeof r[k] !== "object"));
    const numeric = keys.filter((k) => f.records.every((r) => r[k] == null || typeof r[k] === "number"));
    const section = h("section", { "data-file": f.name }, h("h2", {}, f.name));
    if (numeric.length >= 2) {
      const xs = h("select", {}, numeric.map((k, i) => h("option", { value: k, selected: i === 0 }, k)));
      const ys = h("select", {}, numeric.map((k, i) => h("option", { value: k, selected: i === 1 }, k)));
      const box = h("div", { class: "chart" });
      section.append(h("div", { class: "controls" }, h("label", {}, "x", xs), h("label", {}, "y", ys)), box);
      const plot = () => {
        box.replaceChildren();
        const pts = f.records.filter((r) => r[xs.value] != null && r[ys.value] != null).sort((a, b) => a[xs.value] - b[xs.value]);
        const c = chart(box, `${ys.value} vs ${xs.value}`, [ys.value], { xLabel: xs.value });
        c.u.series[1].paths = () => null;
        c.set(pts.map((r) => r[xs.value]), [pts.map((r) => r[ys.value])]);
      };
      xs.addEventListener("change", plot); ys.addEventListener("change", plot);
      plot();
    }
    const cols = keys.map((k) => ({ key: k, label: k, num: numeric.includes(k),
      render: (r) => (typeof r[k] === "number" && !Number.isInteger(r[k]) ? fmtNum(r[k]) : r[k] ?? "") }));
    section.append(h("div", { class: "tablewrap" }, sortableTable(cols, f.records).table));
    root.append(section);
  }
}

// ---------------------------------------------------------------- router

async function route() {
  for (const fn of teardown.splice(0)) { try { fn(); } catch (e) { /* already stopped */ } }
  const hash = location.hash.replace(/^#\/?/, "") || "zoo";
  const [path, query] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  const root = document.getElementById("view");
  root.replaceChildren();
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === (parts[0] === "runs" ? "runs" : parts[0])));
  root.dataset.view = parts[0];
  root.dataset.ready = "0";
  try {
    if (parts[0] === "model") await viewModel(root, parts[1] || "lenet5", params);
    else if (parts[0] === "runs" && parts.length > 1) await viewRun(root, parts.slice(1).join("/"));
    else if (parts[0] === "runs") await viewRuns(root);
    else if (parts[0] === "playground") await viewPlayground(root);
    else if (parts[0] === "compare") await viewCompare(root);
    else await viewZoo(root);
  } catch (e) {
    root.append(h("p", { class: "error", id: "view-error" }, e.message));
  }
  root.dataset.ready = "1";
}

window.addEventListener("hashchange", route);
route();
