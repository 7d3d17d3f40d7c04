/* xaicli report: the per-image rows (rendered a screenful at a time) and their detail view.
   The rows come from the JSON document #images-data; nothing is fetched, nothing is sent. */
"use strict";

const DASH = "\u2013";
const ROW_HEIGHT = 64;
const OVERSCAN = 8;

/* a number as Python's "%.4g" writes it (the tables of this page and the CSVs' 6 digits, shortened) */
function fmt(value) {
  if (value === null || value === undefined || value === "") return DASH;
  if (typeof value !== "number") return String(value);
  if (!Number.isFinite(value)) return DASH;
  if (Number.isInteger(value)) return String(value);
  const exponent = parseInt(value.toExponential(3).split("e")[1], 10);
  if (exponent < -4 || exponent >= 4) {
    const [mantissa, power] = value.toExponential(3).split("e");
    const p = parseInt(power, 10);
    return mantissa.replace(/\.?0+$/, "") + "e" + (p < 0 ? "-" : "+") + String(Math.abs(p)).padStart(2, "0");
  }
  return value.toFixed(Math.max(0, 3 - exponent)).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, "");
}

function element(tag, attributes, children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children || []) if (child) node.append(child);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";

function outlines(view, size) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + size[0] + " " + size[1]);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "outline");
  svg.setAttribute("aria-hidden", "true");
  Object.entries(view.outlines || {}).forEach(([name, d], k) => {
    for (const css of ["halo", "line line-" + (k % 4)]) {
      const path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      path.setAttribute("class", css);
      path.setAttribute("data-region", name);
      svg.append(path);
    }
  });
  return svg;
}

/* the two ends of a map's colour scale, and its middle for signed maps */
function scaleEnds(mode, lo, hi) {
  if (mode === "signed") return [fmt(lo), "0", fmt(hi)];
  if (mode === "minmax") return [fmt(lo), fmt(hi)];
  return ["0", fmt(hi)];
}

function colourScale(mode, lo, hi, note) {
  const ends = scaleEnds(mode, lo, hi);
  return element("div", {class: "scale", title: note}, [
    element("span", {class: "bar"}),
    element("span", {class: "ends"}, ends.map((text) => element("span", {text})))]);
}

const MODES = {
  positive: "positive part, 0 to the map's maximum",
  abs: "magnitude |value|, 0 to the largest",
  minmax: "from the map's minimum to its maximum",
  signed: "negative to positive, 0 in the middle",
};

function switchables() {
  for (const select of document.querySelectorAll("select[data-switch]")) {
    const box = document.getElementById(select.dataset.switch);
    select.addEventListener("change", () => {
      for (const part of box.querySelectorAll(".switchable")) part.hidden = part.dataset.value !== select.value;
    });
  }
}

function ImageRows(data) {
  const rows = data.rows;
  const folder = data.folder || "";
  const columns = data.columns;
  const pictured = data.pictured || [];
  const methods = data.methods || [];
  const metrics = data.metrics || [];
  const head = document.getElementById("image-head");
  const viewport = document.getElementById("viewport");
  const spacer = document.getElementById("spacer");
  const count = document.getElementById("row-count");
  const dialog = document.getElementById("detail");
  const controls = {
    truth: document.getElementById("filter-true"), predicted: document.getElementById("filter-predicted"),
    outcome: document.getElementById("filter-outcome"), metric: document.getElementById("metric"),
    method: document.getElementById("filter-method"), op: document.getElementById("filter-op"),
    value: document.getElementById("filter-value"), file: document.getElementById("filter-file"),
  };
  const pictures = rows.some((r) => r.pic);
  const outlined = rows.some((r) => r.pic && Object.keys(r.pic.outlines || {}).length);
  document.getElementById("show-outline").closest("label").hidden = !outlined;
  let shown = rows.map((_, i) => i);
  let sortKey = {kind: "n"};
  let ascending = true;
  let metric = Math.max(0, metrics.findIndex((m) => m.direction !== null && m.direction !== undefined));
  let current = -1;
  const drawn = new Map();

  function options(select, values) {
    for (const value of values) select.append(element("option", {value: String(value), text: String(value)}));
  }
  function distinct(index) {
    if (index === null || index === undefined) return [];
    const values = new Set(rows.map((r) => r.v[index]).filter((v) => typeof v === "string"));
    return [...values].sort();
  }
  const truths = distinct(data.truth);
  const predictions = distinct(data.predicted);
  options(controls.truth, truths);
  options(controls.predicted, predictions);
  controls.truth.closest("label").hidden = truths.length === 0;
  controls.predicted.closest("label").hidden = predictions.length === 0 || truths.length === 0;
  controls.outcome.closest("label").hidden = data.correct === null || data.correct === undefined;
  metrics.forEach((m, i) => controls.metric.append(element("option", {value: String(i), text: m.key + arrow(m.direction)})));
  controls.metric.value = String(metric);
  options(controls.method, methods);
  for (const box of [controls.metric.closest("label"), controls.method.closest(".where")]) box.hidden = !methods.length;

  function arrow(direction) {
    return direction === "higher" ? " \u2191" : direction === "lower" ? " \u2193" : "";
  }
  function score(row, method, index) {
    const values = row.s[method];
    return values ? values[index] : null;
  }
  function keyOf(row) {
    if (sortKey.kind === "n") return row.n;
    if (sortKey.kind === "file") return row.name;
    if (sortKey.kind === "column") return row.v[sortKey.index];
    return score(row, sortKey.method, metric);
  }

  const tilesMost = Math.max(0, ...rows.map((r) => (r.pic ? r.pic.tiles.length : 0)));
  const template = ["3.5em"]
    .concat(pictures ? [tilesMost * 49 + 12 + "px"] : [])
    .concat(["minmax(10em, 2fr)"], columns.map(() => "minmax(5em, 1fr)"), methods.map(() => "minmax(5em, 1fr)"))
    .join(" ");
  head.style.gridTemplateColumns = template;

  function header() {
    head.replaceChildren();
    const cells = [["#", {kind: "n"}]];
    if (pictures) cells.push([["image"].concat(pictured).join(", "), null]);
    cells.push(["file", {kind: "file"}]);
    columns.forEach((c, i) => cells.push([c.label + arrow(c.direction), {kind: "column", index: i}]));
    methods.forEach((m) => cells.push([m + " " + (metrics[metric] ? metrics[metric].key + arrow(metrics[metric].direction) : ""), {kind: "score", method: m}]));
    for (const [label, key] of cells) {
      if (!key) { head.append(element("div", {class: "cell", role: "columnheader", text: label})); continue; }
      const same = JSON.stringify(key) === JSON.stringify(sortKey);
      const button = element("button", {type: "button", class: "sort" + (same ? " active" : ""), "data-sort": JSON.stringify(key),
        "aria-sort": same ? (ascending ? "ascending" : "descending") : null, text: label + (same ? (ascending ? " \u25b2" : " \u25bc") : "")});
      button.addEventListener("click", () => {
        if (same) ascending = !ascending; else { sortKey = key; ascending = key.kind === "n" || key.kind === "file"; }
        refresh();
      });
      head.append(element("div", {class: "cell", role: "columnheader"}, [button]));
    }
  }

  function passes(row) {
    if (controls.truth.value && row.v[data.truth] !== controls.truth.value) return false;
    if (controls.predicted.value && row.v[data.predicted] !== controls.predicted.value) return false;
    if (controls.outcome.value && String(row.v[data.correct]) !== controls.outcome.value) return false;
    const text = controls.file.value.trim().toLowerCase();
    if (text && !row.name.toLowerCase().includes(text)) return false;
    const limit = parseFloat(controls.value.value);
    if (Number.isFinite(limit)) {
      const chosen = controls.method.value ? [controls.method.value] : methods;
      const ok = chosen.some((m) => {
        const value = score(row, m, metric);
        return typeof value === "number" && (controls.op.value === "lt" ? value < limit : value > limit);
      });
      if (!ok) return false;
    }
    return true;
  }

  function refresh() {
    shown = rows.map((_, i) => i).filter((i) => passes(rows[i]));
    shown.sort((a, b) => {
      const x = keyOf(rows[a]), y = keyOf(rows[b]);
      const missingX = x === null || x === undefined, missingY = y === null || y === undefined;
      if (missingX || missingY) return missingX === missingY ? rows[a].n - rows[b].n : missingX ? 1 : -1;
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return (ascending ? order : -order) || rows[a].n - rows[b].n;
    });
    count.textContent = shown.length + " of " + rows.length + " images";
    spacer.style.height = shown.length * ROW_HEIGHT + "px";
    for (const node of drawn.values()) node.remove();
    drawn.clear();
    header();
    render();
  }

  function rowNode(position) {
    const row = rows[shown[position]];
    const cells = [element("div", {class: "cell num", text: String(row.n)})];
    if (pictures) {
      const strip = element("div", {class: "cell strip"});
      if (row.pic) strip.append(element("img", {src: row.pic.strip, alt: "", title: row.pic.tiles.join(", "),
        decoding: "async", style: "aspect-ratio:" + row.pic.tiles.length * row.pic.size[0] + " / " + row.pic.size[1]}));
      cells.push(strip);
    }
    cells.push(element("div", {class: "cell file", title: folder + row.name, text: row.name}));
    columns.forEach((c, i) => cells.push(element("div", {class: "cell" + (c.numeric ? " num" : ""), text: fmt(row.v[i])})));
    for (const m of methods) cells.push(element("div", {class: "cell num", "data-method": m, text: fmt(score(row, m, metric))}));
    const correct = data.correct === null || data.correct === undefined ? null : row.v[data.correct];
    const node = element("div", {class: "image-row" + (correct === 0 ? " wrong" : ""), role: "row", tabindex: "0",
      "data-n": String(row.n), style: "top:" + position * ROW_HEIGHT + "px; grid-template-columns:" + template}, cells);
    node.addEventListener("click", () => open(position));
    node.addEventListener("keydown", (event) => { if (event.key === "Enter") open(position); });
    return node;
  }

  function render() {
    const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(shown.length, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW_HEIGHT) + OVERSCAN);
    for (const [position, node] of drawn) if (position < first || position >= last) { node.remove(); drawn.delete(position); }
    for (let position = first; position < last; position++) {
      if (!drawn.has(position)) { const node = rowNode(position); drawn.set(position, node); spacer.append(node); }
    }
  }

  /* one tile of an image's picture strip, with the region outlines over it */
  function card(title, pic, tile, footer) {
    const size = pic.size[0] && pic.size[1] ? pic.size : [1, 1];
    const count = pic.tiles.length;
    const frame = element("div", {class: "frame", role: "img", "aria-label": title, "data-tile": String(tile),
      style: "aspect-ratio:" + size[0] + " / " + size[1]});
    frame.style.backgroundImage = "url(" + JSON.stringify(pic.strip) + ")";
    frame.style.backgroundSize = count * 100 + "% 100%";
    frame.style.backgroundPosition = (count > 1 ? (100 * tile) / (count - 1) : 0) + "% 0";
    if (Object.keys(pic.outlines || {}).length) frame.append(outlines(pic, size));
    return element("figure", {class: "map-card"}, [frame, element("figcaption", {}, [element("strong", {text: title})].concat(footer || []))]);
  }

  function open(position) {
    if (position < 0 || position >= shown.length) return;
    current = position;
    const row = rows[shown[position]];
    document.getElementById("detail-title").textContent = "#" + row.n + " " + folder + row.name;
    const facts = document.getElementById("detail-facts");
    facts.replaceChildren(...columns.map((c, i) => element("span", {class: "fact"}, [
      element("span", {class: "name", text: c.label}), element("span", {class: "value", text: fmt(row.v[i])})])));
    if (row.region) facts.append(element("span", {class: "fact"}, [element("span", {class: "name", text: "region"}),
      element("span", {class: "value", text: row.region})]));
    const maps = document.getElementById("detail-maps");
    maps.replaceChildren();
    const pic = row.pic;
    if (pic) {
      pic.tiles.forEach((name, tile) => {
        if (name === "image") {
          const regions = Object.keys(pic.outlines || {});
          maps.append(card("image", pic, tile, regions.length ? [element("span", {class: "note", text: "outline: " + regions.join(", ")})] : []));
          return;
        }
        const [mode, lo, hi] = pic.maps[name];
        const flags = (row.flags || {})[name];
        maps.append(card(name, pic, tile, [element("span", {class: "mode", text: mode}),
          colourScale(mode, lo, hi, MODES[mode] || mode), flags ? element("span", {class: "flag", text: flags}) : null]));
      });
    } else if (data.grids && row.page) {
      const page = "grid-" + String(row.page).padStart(3, "0") + ".png";
      maps.append(element("p", {class: "note", text: "This run kept no per-image pictures (run compare with --report or --save-maps); its grid page:"}));
      maps.append(element("img", {class: "grid-page", src: page, alt: page}));
    }
    const table = element("table", {class: "data", id: "detail-table"});
    table.append(element("thead", {}, [element("tr", {}, [element("th", {text: "method"})].concat(
      metrics.map((m) => element("th", {class: "num", text: m.key + arrow(m.direction)}))))]));
    const body = element("tbody");
    for (const m of methods) if (row.s[m]) body.append(element("tr", {}, [element("td", {text: m})].concat(
      metrics.map((_, i) => element("td", {class: "num", text: fmt(row.s[m][i])})))));
    table.append(body);
    document.getElementById("detail-scores").replaceChildren(...(methods.length ? [table] : []));
    dialog.classList.toggle("no-outline", !document.getElementById("show-outline").checked);
    if (!dialog.open) dialog.showModal();
    history.replaceState(null, "", "#image-" + row.n);
  }

  document.getElementById("detail-prev").addEventListener("click", () => open(current - 1));
  document.getElementById("detail-next").addEventListener("click", () => open(current + 1));
  document.getElementById("show-outline").addEventListener("change", (event) => dialog.classList.toggle("no-outline", !event.target.checked));
  dialog.addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") open(current - 1);
    if (event.key === "ArrowRight") open(current + 1);
  });
  dialog.addEventListener("close", () => history.replaceState(null, "", location.pathname + location.search));
  for (const name of ["truth", "predicted", "outcome", "method", "op"]) controls[name].addEventListener("change", refresh);
  for (const name of ["value", "file"]) controls[name].addEventListener("input", refresh);
  controls.metric.addEventListener("change", () => { metric = parseInt(controls.metric.value, 10); refresh(); });
  viewport.addEventListener("scroll", () => window.requestAnimationFrame(render), {passive: true});
  window.addEventListener("resize", render);
  refresh();
  const wanted = /^#image-(\d+)$/.exec(location.hash);
  if (wanted) open(shown.findIndex((i) => rows[i].n === parseInt(wanted[1], 10)));
}

switchables();
const source = document.getElementById("images-data");
if (source) ImageRows(JSON.parse(source.textContent));
document.body.dataset.ready = "true";
