// Metric charts: uPlot, fed by MLflow's get-history-bulk-interval (the server samples each
// history down to at most `max_results` points, so the browser never gets more points than
// the chart has pixels).
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import * as api from "./api";
import { h, clear, errorBox, fmtNum } from "./dom";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export const color = (i: number) => PALETTE[i % PALETTE.length];
const MAX_POINTS = 2500; // the endpoint's cap per run

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
  // The step range zoomed into (x = step): refetched, so the server samples only that range
  // and the detail between the points of the whole-history sample appears.
  let range: [number, number] | null = null;

  const draw = () => {
    if (!series) return;
    plot?.destroy();
    const x = xSel.value as XAxis;
    const alpha = Number(smooth.value);
    const tables: uPlot.AlignedData[] = series.map(({ points }) => {
      const t0 = points.length ? Math.min(...points.map((p) => Number(p.timestamp))) : 0;
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
              if (x !== "step" || u.select.width < 2) return;
              const lo = Math.floor(u.posToVal(u.select.left, "x"));
              const hi = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
              if (hi > lo) {
                range = [lo, hi];
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

  const load = async () => {
    try {
      // The sample keeps the first and last steps besides `max_results` evenly spaced ones: one
      // less than the chart's width in device pixels keeps it within a point per pixel.
      const width = Math.max(2, Math.min(MAX_POINTS, Math.round((plotEl.clientWidth || 600) * (window.devicePixelRatio || 1)) - 1));
      const r = await api.get("metrics/get-history-bulk-interval", {
        run_ids: runs.map((r) => r.id),
        metric_key: metric,
        max_results: width,
        start_step: range?.[0],
        end_step: range?.[1],
      });
      const byRun = new Map<string, api.Metric[]>();
      for (const m of r.metrics || []) {
        if (!byRun.has(m.run_id)) byRun.set(m.run_id, []);
        byRun.get(m.run_id)!.push(m);
      }
      series = runs.filter((run) => byRun.has(run.id)).map((run) => ({ run, points: byRun.get(run.id)! }));
      const n = series.reduce((a, s) => a + s.points.length, 0);
      if (!series.length) {
        clear(status, "No values logged.");
        return;
      }
      clear(status, `${n} points shown (sampled by the server)${range ? `, steps ${range[0]}–${range[1]}` : ""}; drag to zoom, double-click to reset.`);
      draw();
    } catch (e) {
      clear(status, errorBox(e));
    }
  };
  plotEl.addEventListener("dblclick", () => {
    if (range) {
      range = null;
      load();
    }
  });
  xSel.addEventListener("change", draw);
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
