// Metric charts: uPlot, fed by Cairn's `cairn/metrics/get-history-downsampled`: the server cuts
// each history into one bucket per device pixel of the chart's width and sends each bucket's
// minimum and maximum, so the browser never gets more than two points per pixel and a one-step
// spike between two sampled steps is still drawn (an evenly spaced sample of steps, MLflow's
// get-history-bulk-interval, can miss it).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import * as api from "./api";
import { h, clear, errorBox, fmtNum, fmtTime } from "./dom";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export const color = (i: number) => PALETTE[i % PALETTE.length];
const MAX_BUCKETS = 5000; // the endpoint's cap per run

export interface ChartRun {
  id: string;
  name: string;
}

type XAxis = "step" | "time" | "relative";

/** A chart of `metric` for `runs`, with its own controls (x axis, smoothing, log scale). */
export function metricChart(metric: string, runs: ChartRun[], opts: { height?: number } = {}): HTMLElement {
  const box = h("div", { class: "chart", "data-metric": metric });
  const plotEl = h("div", { class: "plot" });
  const status = h("div", { class: "muted small" }, "Loading…");
  const xSel = h("select", { "aria-label": "X axis" }, h("option", { value: "step" }, "Step"), h("option", { value: "time" }, "Wall time"), h("option", { value: "relative" }, "Relative time"));
  const smooth = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: "0", "aria-label": "Smoothing" });
  const logBox = h("input", { type: "checkbox", "aria-label": "Log scale" });
  box.append(
    h("div", { class: "chart-head" }, h("strong", null, metric), h("span", { class: "chart-controls" }, xSel, h("label", null, " smoothing ", smooth), h("label", null, logBox, " log"))),
    plotEl,
    status,
  );
  let series: { run: ChartRun; points: api.Metric[] }[] | null = null;
  let plot: uPlot | null = null;
  // The range zoomed into (steps, or timestamps in ms for both time axes): refetched, so the
  // server buckets only that range and the detail inside it appears.
  let range: { axis: "step" | "timestamp"; lo: number; hi: number } | null = null;
  // Each run's first timestamp seen (relative time counts from it, also once zoomed in).
  const start = new Map<string, number>();

  const draw = () => {
    if (!series) return;
    plot?.destroy();
    const x = xSel.value as XAxis;
    const alpha = Number(smooth.value);
    const tables: uPlot.AlignedData[] = series.map(({ run, points }) => {
      const t0 = start.get(run.id) ?? 0;
      const sorted = points
        .map((p) => ({ x: x === "step" ? Number(p.step) : x === "time" ? Number(p.timestamp) / 1000 : (Number(p.timestamp) - t0) / 1000, y: Number(p.value) }))
        .sort((a, b) => a.x - b.x);
      const xs: number[] = [];
      const ys: number[] = [];
      let ema: number | null = null;
      for (const p of sorted) {
        // Same x twice (two values at one step): keep the last.
        const y = alpha > 0 && isFinite(p.y) ? (ema = ema === null ? p.y : alpha * ema + (1 - alpha) * p.y) : p.y;
        if (xs.length && xs[xs.length - 1] === p.x) ys[ys.length - 1] = y;
        else {
          xs.push(p.x);
          ys.push(y);
        }
      }
      return [xs, ys];
    });
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
    const width = Math.max(200, plotEl.clientWidth || box.clientWidth || 600);
    const fg = textColor(box);
    plot = new uPlot(
      {
        width,
        height: opts.height ?? 220,
        scales: { x: { time: x === "time" }, y: { distr: logBox.checked ? 3 : 1 } },
        axes: [{ stroke: fg, grid: { stroke: "rgba(128,128,128,.2)" }, ticks: { stroke: "rgba(128,128,128,.4)" } }, { stroke: fg, grid: { stroke: "rgba(128,128,128,.2)" }, ticks: { stroke: "rgba(128,128,128,.4)" }, size: 60, values: (_u, vals) => vals.map((v) => fmtNum(v)) }],
        series: [
          { label: x === "step" ? "step" : x === "time" ? "time" : "seconds" },
          ...series.map((s, i) => ({ label: s.run.name, stroke: color(i), width: 1.5, spanGaps: true, points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null ? "–" : fmtNum(v)) })),
        ],
        cursor: { drag: { x: true, y: false } },
        hooks: {
          setSelect: [
            (u: uPlot) => {
              if (u.select.width < 2) return;
              const a = u.posToVal(u.select.left, "x");
              const b = u.posToVal(u.select.left + u.select.width, "x");
              // x is a step, seconds since the epoch, or seconds since the run's first value.
              const toX = (v: number, run0: number) => (x === "step" ? v : x === "time" ? v * 1000 : run0 + v * 1000);
              // Relative time: runs overlaid from their own starts; zoom on the earliest one's.
              const base = x === "relative" ? Math.min(...[...start.values()]) : 0;
              const lo = Math.floor(toX(a, base));
              const hi = Math.ceil(toX(b, base));
              if (hi > lo) {
                range = { axis: x === "step" ? "step" : "timestamp", lo, hi };
                load();
              }
            },
          ],
        },
        legend: { live: true },
      },
      data as uPlot.AlignedData,
      plotEl,
    );
  };

  const begin = api.newestOnly();
  const load = async () => {
    const fresh = begin();
    try {
      // One bucket per device pixel of the plot's width: at most two points per pixel.
      const buckets = Math.max(2, Math.min(MAX_BUCKETS, Math.round((plotEl.clientWidth || 600) * (window.devicePixelRatio || 1))));
      const t0 = performance.now();
      const r = await api.cairnGet("metrics/get-history-downsampled", {
        run_id: runs.map((r) => r.id),
        metric_key: metric,
        buckets,
        x_axis: range?.axis,
        min_x: range?.lo,
        max_x: range?.hi,
      });
      if (!fresh()) return; // another zoom asked for since
      const byRun = new Map<string, api.Metric[]>();
      for (const m of r.metrics || []) {
        if (!byRun.has(m.run_id)) byRun.set(m.run_id, []);
        byRun.get(m.run_id)!.push(m);
      }
      series = runs.filter((run) => byRun.has(run.id)).map((run) => ({ run, points: byRun.get(run.id)! }));
      for (const { run, points } of series) {
        let t = start.get(run.id) ?? Infinity;
        for (const p of points) t = Math.min(t, Number(p.timestamp));
        start.set(run.id, t);
      }
      const n = series.reduce((a, s) => a + s.points.length, 0);
      box.dataset.points = String(n);
      if (!series.length) {
        clear(status, "No values logged.");
        box.dataset.drawnMs = String(performance.now() - t0);
        return;
      }
      const span = range ? (range.axis === "step" ? `, steps ${range.lo}–${range.hi}` : `, ${fmtTime(range.lo)} – ${fmtTime(range.hi)}`) : "";
      clear(status, `${n} points shown (min and max per pixel, from the server)${span}; drag to zoom, double-click to reset.`);
      draw();
      // For the browser benchmark (bench/ui.py): navigation-independent time from request to
      // the canvas drawn.
      box.dataset.drawnMs = String(performance.now() - t0);
    } catch (e) {
      if (fresh()) clear(status, errorBox(e));
    }
  };
  plotEl.addEventListener("dblclick", () => {
    if (range) {
      range = null;
      load();
    }
  });
  xSel.addEventListener("change", () => {
    const axis = xSel.value === "step" ? "step" : "timestamp";
    if (range && range.axis !== axis) {
      range = null;
      load();
    } else draw();
  });
  smooth.addEventListener("input", draw);
  logBox.addEventListener("change", draw);
  // Drawn once the box is in the page (its width is known).
  requestAnimationFrame(() => load());
  return box;
}

/** The text colour of `el` (light or dark theme): canvas strokes cannot use `currentColor`. */
export function textColor(el: Element): string {
  return getComputedStyle(el).color || "#333";
}
