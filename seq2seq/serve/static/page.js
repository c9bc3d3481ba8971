// The seq2seq page: choose a served model, decode text or forecast a series, and
// look at attention.  Plain JavaScript against the server's own /v1 API; nothing is
// fetched from elsewhere, so it works offline.
"use strict";

const $ = (id) => document.getElementById(id);
let models = {};

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function api(path, options = {}) {
  const headers = options.headers || {};
  const key = $("api-key").value;
  if (key) headers["Authorization"] = "Bearer " + key;
  const response = await fetch(path, { ...options, headers });
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const message = body && body.error ? body.error.message : response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return body;
}

async function loadModels() {
  try {
    const list = (await api("/v1/models")).models;
    const select = $("model");
    select.innerHTML = "";
    for (const m of list) {
      models[m.name] = m;
      const option = document.createElement("option");
      option.value = m.name;
      option.textContent = `${m.name} (${m.task})`;
      select.appendChild(option);
    }
    showError("");
    modelChanged();
  } catch (e) {
    showError("Could not list the models: " + e.message);
  }
}

function modelChanged() {
  const m = models[$("model").value];
  if (!m) return;
  $("model-info").textContent = `${m.architecture}, ${m.parameters.toLocaleString()} parameters`;
  $("text-panel").hidden = m.task !== "text";
  $("forecast-panel").hidden = m.task !== "forecast";
  if (m.task === "forecast") {
    const c = m.columns;
    $("forecast-columns").textContent = [c.id, c.time, ...c.values].filter(Boolean).join(", ");
    $("horizon").value = m.horizon;
  }
}

function strategy() {
  return document.querySelector('input[name="strategy"]:checked').value;
}

function strategyChanged() {
  for (const div of document.querySelectorAll(".opts")) {
    div.classList.toggle("shown", div.dataset.for === strategy());
  }
}

// ------------------------------------------------------------------ text
async function decode() {
  const inputs = $("inputs").value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!inputs.length) { showError("Type at least one input."); return; }
  const request = { inputs, strategy: strategy(), return_scores: true, return_attention: true };
  const number = (id) => Number($(id).value);
  if (request.strategy === "beam") {
    Object.assign(request, { beam_size: number("beam-size"), nbest: number("nbest"),
                             length_penalty: number("length-penalty") });
  } else if (request.strategy === "sample") {
    Object.assign(request, { temperature: number("temperature"), top_k: number("top-k"),
                             top_p: number("top-p"), num_samples: number("num-samples"),
                             nbest: number("num-samples") });
  }
  $("decode").disabled = true;
  try {
    const body = await api(`/v1/models/${encodeURIComponent($("model").value)}/predict`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    showError("");
    showResults(body.results);
  } catch (e) {
    showError(e.message);
  } finally {
    $("decode").disabled = false;
  }
}

function showResults(results) {
  const box = $("results");
  box.innerHTML = "";
  $("attention").hidden = true;
  results.forEach((r) => {
    const div = document.createElement("div");
    div.className = "result";
    const src = document.createElement("div");
    src.className = "source";
    src.textContent = r.input;
    div.appendChild(src);
    for (const h of r.hypotheses) {
      const row = document.createElement("div");
      row.className = "hyp";
      row.title = "click: show the attention";
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = h.score === undefined ? "" : h.score.toFixed(3);
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = h.text;
      row.append(score, text);
      row.addEventListener("click", () => {
        document.querySelectorAll(".hyp.selected").forEach((x) => x.classList.remove("selected"));
        row.classList.add("selected");
        showAttention(r.input, h);
      });
      div.appendChild(row);
    }
    box.appendChild(div);
  });
}

function showAttention(input, hyp) {
  const box = $("heatmap");
  box.innerHTML = "";
  $("attention").hidden = false;
  $("attention-title").textContent = `${input} \u2192 ${hyp.text}`;
  if (!hyp.attention) { box.textContent = "This model has no attention."; return; }
  const table = document.createElement("table");
  table.className = "heatmap";
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th"));
  for (const s of hyp.source_tokens) {
    const th = document.createElement("th");
    th.textContent = s;
    head.appendChild(th);
  }
  const outputs = [...hyp.tokens, "</s>"];
  const body = table.createTBody();
  hyp.attention.forEach((weights, i) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.textContent = outputs[i] === undefined ? "" : outputs[i];
    tr.appendChild(th);
    weights.forEach((w) => {
      const td = tr.insertCell();
      const shade = Math.round(255 * (1 - w));
      td.style.background = `rgb(${shade}, ${shade}, 255)`;
      td.title = w.toFixed(3);
    });
  });
  box.appendChild(table);
}

// ------------------------------------------------------------------ forecast
async function forecast() {
  const csv = $("csv").value.trim();
  if (!csv) { showError("Paste a CSV or choose a file."); return; }
  const horizon = $("horizon").value ? `?horizon=${Number($("horizon").value)}` : "";
  $("forecast").disabled = true;
  try {
    const body = await api(`/v1/models/${encodeURIComponent($("model").value)}/forecast${horizon}`, {
      method: "POST", headers: { "Content-Type": "text/csv" }, body: csv });
    showError("");
    drawForecasts(body);
  } catch (e) {
    showError(e.message);
  } finally {
    $("forecast").disabled = false;
  }
}

function toNumber(t) {
  return typeof t === "number" ? t : Date.parse(t);
}

function drawForecasts(body) {
  const box = $("forecast-plot");
  box.innerHTML = "";
  for (const s of body.series.slice(0, 5)) {
    for (const column of Object.keys(s.values)) {
      const q = s.quantiles[column] || {};
      const levels = Object.keys(q).sort((a, b) => Number(a) - Number(b));
      box.appendChild(plot(`${s.id ? s.id + ": " : ""}${column}`, s.history.time, s.history.values[column],
                           s.time, s.values[column],
                           levels.length ? q[levels[0]] : null, levels.length ? q[levels[levels.length - 1]] : null));
    }
  }
}

function plot(title, pastTime, past, futureTime, future, lower, upper) {
  const W = 760, H = 300, L = 60, R = 15, T = 25, B = 30;
  const xs = [...pastTime, ...futureTime].map(toNumber);
  const ys = [...past, ...future, ...(lower || []), ...(upper || [])].filter((v) => v !== null);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const X = (t) => L + (W - L - R) * (toNumber(t) - x0) / ((x1 - x0) || 1);
  const Y = (v) => H - B - (H - T - B) * (v - y0) / ((y1 - y0) || 1);
  const points = (times, values) => times.map((t, i) => `${X(t).toFixed(1)},${Y(values[i]).toFixed(1)}`).join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W);
  svg.setAttribute("class", "forecast");
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.appendChild(el);
    return el;
  };
  add("text", { x: L, y: 16, "font-size": 13 }, title);
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" });
  add("text", { x: 4, y: Y(y1) + 4, "font-size": 11 }, y1.toPrecision(4));
  add("text", { x: 4, y: Y(y0) + 4, "font-size": 11 }, y0.toPrecision(4));
  add("text", { x: L, y: H - 10, "font-size": 11 }, String(pastTime[0]));
  add("text", { x: W - R, y: H - 10, "font-size": 11, "text-anchor": "end" }, String(futureTime[futureTime.length - 1]));
  if (lower && upper) {
    const band = points(futureTime, upper) + " " + points([...futureTime].reverse(), [...lower].reverse());
    add("polygon", { points: band, fill: "#f4a259", "fill-opacity": 0.3, stroke: "none", class: "interval" });
  }
  add("polyline", { points: points(pastTime, past), fill: "none", stroke: "#1f77b4", "stroke-width": 1.5,
                    class: "history" });
  add("polyline", { points: points(futureTime, future), fill: "none", stroke: "#e4572e", "stroke-width": 2,
                    class: "prediction" });
  return svg;
}

function readFile() {
  const file = $("csv-file").files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { $("csv").value = reader.result; };
  reader.readAsText(file);
}

$("model").addEventListener("change", modelChanged);
$("api-key").addEventListener("change", loadModels);
document.querySelectorAll('input[name="strategy"]').forEach((r) => r.addEventListener("change", strategyChanged));
$("decode").addEventListener("click", decode);
$("forecast").addEventListener("click", forecast);
$("csv-file").addEventListener("change", readFile);
strategyChanged();
loadModels();
