// Compare runs: params and metrics side by side (differences highlighted), parallel
// coordinates, a scatter of any two values, and the runs' metric charts together.
import uPlot from "uplot";
import * as api from "./api";
import { Run } from "./api";
import { h, clear, errorBox, fmtNum, enc, link } from "./dom";
import { metricChart, color, textColor } from "./chart";
import { section } from "./run";

const MAX_COMPARE = 100;

export async function comparePage(root: HTMLElement, query: URLSearchParams) {
  let ids: string[] = [];
  try {
    ids = JSON.parse(query.get("runs") || "[]").map(String).slice(0, MAX_COMPARE);
  } catch {
    clear(root, errorBox("The runs parameter must be a JSON list of run IDs."));
    return;
  }
  if (!ids.length) {
    clear(root, h("p", { class: "empty" }, "No runs to compare: select runs in an experiment's table."));
    return;
  }
  clear(root, h("p", { class: "muted" }, "Loading runs…"));
  let runs: Run[];
  try {
    runs = await Promise.all(ids.map((id) => api.get("runs/get", { run_id: id }).then((r) => r.run as Run)));
  } catch (e) {
    clear(root, errorBox(e));
    return;
  }
  const name = (r: Run) => r.info.run_name || r.info.run_id;
  const paramKeys = [...new Set(runs.flatMap((r) => (r.data.params || []).map((p) => p.key)))].sort();
  const metricKeys = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort();
  const param = (r: Run, k: string) => r.data.params?.find((p) => p.key === k)?.value;
  const metric = (r: Run, k: string) => r.data.metrics?.find((m) => m.key === k)?.value;
  const onlyDiff = h("input", { type: "checkbox", "aria-label": "Only differences" });

  const table = h("table", { class: "grid compare" });
  const drawTable = () => {
    const rowsFor = (label: string, keys: string[], get: (r: Run, k: string) => string | number | undefined, fmt: (v: any) => string) =>
      keys
        .map((k) => {
          const vals = runs.map((r) => get(r, k));
          const differs = new Set(vals.map((v) => (v === undefined ? "\u0000" : String(v)))).size > 1;
          if (onlyDiff.checked && !differs) return null;
          return h("tr", { class: differs ? "differs" : "", "data-key": `${label}:${k}` }, h("th", null, k), vals.map((v) => h("td", { class: typeof v === "number" ? "num" : "" }, v === undefined ? "–" : fmt(v))));
        })
        .filter(Boolean);
    clear(
      table,
      h("thead", null, h("tr", null, h("th", null, "Run"), runs.map((r) => h("th", null, link(`#/experiments/${enc(r.info.experiment_id)}/runs/${enc(r.info.run_id)}`, name(r)))))),
      h("tbody", null,
        h("tr", { class: "group" }, h("th", { colspan: runs.length + 1 }, "Parameters")),
        rowsFor("param", paramKeys, param, String),
        h("tr", { class: "group" }, h("th", { colspan: runs.length + 1 }, "Metrics")),
        rowsFor("metric", metricKeys, metric, fmtNum),
      ),
    );
  };
  onlyDiff.addEventListener("change", drawTable);
  drawTable();

  // Values usable on an axis: params (numeric or categorical) and metrics.
  const dims = [...paramKeys.map((k) => ({ id: `param:${k}`, label: k, get: (r: Run) => param(r, k) })), ...metricKeys.map((k) => ({ id: `metric:${k}`, label: k, get: (r: Run) => metric(r, k) }))];
  const select = (label: string, initial?: string) =>
    h("select", { "aria-label": label }, dims.map((d) => h("option", { value: d.id, selected: d.id === initial }, `${d.id.startsWith("param") ? "param" : "metric"}: ${d.label}`)));

  // Parallel coordinates: every param, then the chosen metric.
  const pcMetric = select("Parallel coordinates metric", metricKeys[0] ? `metric:${metricKeys[0]}` : undefined);
  const pcCanvas = h("canvas", { class: "parallel", width: "1000", height: "320" });
  const drawParallel = () => {
    const chosen = dims.find((d) => d.id === pcMetric.value);
    const axes = [...dims.filter((d) => d.id.startsWith("param:")), ...(chosen && chosen.id.startsWith("metric:") ? [chosen] : [])];
    parallelCoordinates(pcCanvas, axes, runs);
  };
  pcMetric.addEventListener("change", drawParallel);

  // Scatter: any value against another (uPlot, points only).
  const sx = select("Scatter X", dims[0]?.id);
  const sy = select("Scatter Y", dims.find((d) => d.id.startsWith("metric:"))?.id ?? dims[1]?.id);
  const scatterBox = h("div", { class: "scatter" });
  let scatter: uPlot | null = null;
  const drawScatter = () => {
    scatter?.destroy();
    scatter = null;
    const dx = dims.find((d) => d.id === sx.value);
    const dy = dims.find((d) => d.id === sy.value);
    if (!dx || !dy) return clear(scatterBox, h("p", { class: "empty" }, "Nothing to plot."));
    const pts = runs
      .map((r) => ({ x: Number(dx.get(r)), y: Number(dy.get(r)), r }))
      .filter((p) => isFinite(p.x) && isFinite(p.y))
      .sort((a, b) => a.x - b.x);
    if (!pts.length) return clear(scatterBox, h("p", { class: "empty" }, "No run has numeric values for both axes."));
    clear(scatterBox);
    scatter = new uPlot(
      {
        width: Math.max(300, Math.min(700, scatterBox.clientWidth || 600)),
        height: 300,
        scales: { x: { time: false } },
        axes: [{ stroke: textColor(scatterBox), label: dx.label }, { stroke: textColor(scatterBox), label: dy.label, size: 60 }],
        series: [{ label: dx.label }, { label: dy.label, stroke: color(0), fill: color(0), paths: () => null, points: { show: true, size: 8, fill: color(0) } }],
        legend: { live: true },
      },
      [pts.map((p) => p.x), pts.map((p) => p.y)],
      scatterBox,
    );
  };
  sx.addEventListener("change", drawScatter);
  sy.addEventListener("change", drawScatter);

  const charts = h("div", { class: "charts" });
  clear(
    root,
    h("h1", null, `Comparing ${runs.length} runs`),
    section("Parameters and metrics", h("label", { class: "small" }, onlyDiff, " only rows that differ"), h("div", { class: "table-wrap" }, table)),
    section("Parallel coordinates", h("div", { class: "toolbar" }, pcMetric), pcCanvas),
    section("Scatter", h("div", { class: "toolbar" }, sx, " vs ", sy), scatterBox),
    section("Metric charts", charts),
  );
  drawParallel();
  drawScatter();
  const chartRuns = runs.map((r) => ({ id: r.info.run_id, name: name(r) }));
  for (const k of metricKeys.slice(0, 20)) charts.append(metricChart(k, chartRuns));
}

function parallelCoordinates(canvas: HTMLCanvasElement, axes: { label: string; get: (r: Run) => any }[], runs: Run[]) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.parentElement?.clientWidth ? Math.min(1200, canvas.parentElement.clientWidth) : 1000;
  const cssH = 320;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = cssW * dpr;
  canvas.height = cssH * dpr;
  const ctx = canvas.getContext("2d")!;
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, cssW, cssH);
  const fg = getComputedStyle(canvas).color || "#333";
  ctx.font = "12px system-ui, sans-serif";
  if (!axes.length) {
    ctx.fillStyle = fg;
    ctx.fillText("No parameters or metrics to plot.", 10, 20);
    return;
  }
  const top = 30, bottom = cssH - 20, left = 60, right = cssW - 60;
  const xAt = (i: number) => (axes.length === 1 ? (left + right) / 2 : left + ((right - left) * i) / (axes.length - 1));
  // Each axis maps its values to [0, 1]: numbers linearly, anything else by sorted category.
  const scales = axes.map((a) => {
    const vals = runs.map((r) => a.get(r)).filter((v) => v !== undefined);
    const nums = vals.map(Number);
    if (vals.length && nums.every(isFinite)) {
      const lo = Math.min(...nums), hi = Math.max(...nums);
      return { pos: (v: any) => (v === undefined ? null : hi === lo ? 0.5 : (Number(v) - lo) / (hi - lo)), ticks: [[0, fmtNum(lo)], [1, fmtNum(hi)]] as [number, string][] };
    }
    const cats = [...new Set(vals.map(String))].sort();
    return { pos: (v: any) => (v === undefined ? null : cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)), ticks: cats.slice(0, 12).map((c, i) => [cats.length === 1 ? 0.5 : i / (cats.length - 1), c] as [number, string]) };
  });
  const yAt = (p: number) => bottom - (bottom - top) * p;
  runs.forEach((r, ri) => {
    ctx.strokeStyle = color(ri);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let started = false;
    axes.forEach((a, i) => {
      const p = scales[i].pos(a.get(r));
      if (p === null) {
        started = false;
        return;
      }
      if (!started) ctx.moveTo(xAt(i), yAt(p));
      else ctx.lineTo(xAt(i), yAt(p));
      started = true;
    });
    ctx.stroke();
  });
  ctx.fillStyle = fg;
  ctx.strokeStyle = fg;
  ctx.lineWidth = 1;
  axes.forEach((a, i) => {
    const x = xAt(i);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.textAlign = "center";
    ctx.fillText(a.label.length > 18 ? a.label.slice(0, 17) + "…" : a.label, x, top - 12);
    ctx.textAlign = "left";
    for (const [p, t] of scales[i].ticks) ctx.fillText(t.length > 12 ? t.slice(0, 11) + "…" : t, x + 4, yAt(p) + 4);
  });
}
