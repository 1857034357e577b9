// The run page: overview, description, params, metrics (with charts), tags, datasets, artifacts.
import * as api from "./api";
import { Run, tag } from "./api";
import { h, clear, errorBox, fmtTime, fmtDuration, fmtNum, fmtBytes, enc, link } from "./dom";
import { metricChart } from "./chart";
import { artifactBrowser } from "./artifacts";

export async function runPage(root: HTMLElement, experimentId: string, runId: string) {
  clear(root, h("p", { class: "muted" }, "Loading run…"));
  let run: Run;
  try {
    run = (await api.get("runs/get", { run_id: runId })).run;
  } catch (e) {
    clear(root, errorBox(e));
    return;
  }
  const info = run.info;
  const name = info.run_name || info.run_id;
  const [experiment, children, versions] = await Promise.all([
    api.get("experiments/get", { experiment_id: info.experiment_id }).then((r) => r.experiment).catch(() => null),
    api
      .post("runs/search", { experiment_ids: [info.experiment_id], filter: `tags.mlflow.parentRunId = '${info.run_id}'`, max_results: 100 })
      .then((r) => (r.runs || []) as Run[])
      .catch(() => [] as Run[]),
    api
      .get("model-versions/search", { filter: `run_id = '${info.run_id}'`, max_results: 100 })
      .then((r) => r.model_versions || [])
      .catch(() => []),
  ]);
  const parent = tag(run, "mlflow.parentRunId");
  // A node lives in one place: the breadcrumb and the overview each get their own link.
  const expLink = () => link(`#/experiments/${enc(info.experiment_id)}`, experiment ? experiment.name : `Experiment ${info.experiment_id}`);
  const overview = h(
    "table",
    { class: "kv" },
    row("Run ID", h("code", null, info.run_id)),
    row("Experiment", expLink()),
    row("Status", h("span", { class: `status ${info.status}` }, info.status)),
    row("Started", fmtTime(info.start_time)),
    row("Ended", fmtTime(info.end_time)),
    row("Duration", fmtDuration(info.start_time, info.end_time)),
    row("User", info.user_id || ""),
    row("Source", tag(run, "mlflow.source.name") || ""),
    tag(run, "mlflow.source.git.commit") ? row("Git commit", h("code", null, tag(run, "mlflow.source.git.commit")!)) : null,
    parent ? row("Parent run", link(`#/experiments/${enc(info.experiment_id)}/runs/${enc(parent)}`, parent)) : null,
    children.length ? row("Child runs", children.map((c, i) => [i ? ", " : "", link(`#/experiments/${enc(c.info.experiment_id)}/runs/${enc(c.info.run_id)}`, c.info.run_name || c.info.run_id)])) : null,
    run.outputs?.model_outputs?.length ? row("Logged models", run.outputs.model_outputs.map((m: any, i: number) => [i ? ", " : "", h("code", null, m.model_id)])) : null,
    versions.length ? row("Registered versions", versions.map((v: any, i: number) => [i ? ", " : "", link(`#/models/${enc(v.name)}/versions/${enc(v.version)}`, `${v.name} v${v.version}`)])) : null,
    row("Artifact URI", h("code", null, info.artifact_uri || "")),
    info.lifecycle_stage === "deleted" ? row("Lifecycle", "deleted") : null,
  );
  const metrics = run.data.metrics || [];
  const params = [...(run.data.params || [])].sort((a, b) => a.key.localeCompare(b.key));
  const charts = h("div", { class: "charts" });
  clear(
    root,
    h("nav", { class: "crumbs" }, expLink(), " › ", name),
    h("h1", null, name),
    overview,
    section("Description", descriptionEditor(run)),
    section(`Parameters (${params.length})`, params.length ? h("table", { class: "kv params" }, params.map((p) => row(p.key, p.value))) : h("p", { class: "empty" }, "No parameters.")),
    section(
      `Metrics (${metrics.length})`,
      metrics.length
        ? h("table", { class: "kv metrics" }, h("tr", null, h("th", null, "Key"), h("th", null, "Latest"), h("th", null, "Step")), [...metrics].sort((a, b) => a.key.localeCompare(b.key)).map((m) => h("tr", null, h("th", null, m.key), h("td", { class: "num" }, fmtNum(m.value)), h("td", { class: "num" }, String(m.step)))))
        : h("p", { class: "empty" }, "No metrics."),
      charts,
    ),
    section("Tags", tagsEditor(run)),
    section("Datasets", datasets(run)),
    section("Artifacts", artifactBrowser(info.run_id)),
  );
  const chartRuns = [{ id: info.run_id, name }];
  for (const m of [...metrics].sort((a, b) => a.key.localeCompare(b.key)).slice(0, 30)) charts.append(metricChart(m.key, chartRuns));
}

export function row(key: string, ...value: any[]) {
  return h("tr", null, h("th", null, key), h("td", null, ...value));
}
export function section(title: string, ...body: any[]) {
  return h("section", { class: "panel" }, h("h2", null, title), ...body);
}

function descriptionEditor(run: Run): HTMLElement {
  const box = h("div");
  const draw = (text: string) => {
    const area = h("textarea", { rows: "3", "aria-label": "Description", value: text });
    const err = h("div");
    clear(
      box,
      text ? h("p", { class: "description" }, text) : h("p", { class: "empty" }, "No description."),
      h("details", null, h("summary", null, "Edit"), area, h("button", {
        onclick: async () => {
          try {
            await api.post("runs/set-tag", { run_id: run.info.run_id, key: "mlflow.note.content", value: area.value });
            draw(area.value);
          } catch (e) {
            clear(err, errorBox(e));
          }
        },
      }, "Save"), err),
    );
  };
  draw(tag(run, "mlflow.note.content") || "");
  return box;
}

function tagsEditor(run: Run): HTMLElement {
  const box = h("div");
  let tags = (run.data.tags || []).filter((t) => !t.key.startsWith("mlflow."));
  const systemTags = (run.data.tags || []).filter((t) => t.key.startsWith("mlflow."));
  const err = h("div");
  const draw = () => {
    const key = h("input", { placeholder: "key", "aria-label": "Tag key" });
    const value = h("input", { placeholder: "value", "aria-label": "Tag value" });
    clear(
      box,
      h(
        "table",
        { class: "kv tags" },
        tags.sort((a, b) => a.key.localeCompare(b.key)).map((t) =>
          h("tr", null, h("th", null, t.key), h("td", null, t.value), h("td", null,
            h("button", { class: "icon", title: "Edit", onclick: () => { key.value = t.key; value.value = t.value; value.focus(); } }, "✎"),
            h("button", { class: "icon", title: "Delete tag", "aria-label": `Delete tag ${t.key}`, onclick: async () => {
              try {
                await api.post("runs/delete-tag", { run_id: run.info.run_id, key: t.key });
                tags = tags.filter((x) => x.key !== t.key);
                draw();
              } catch (e) {
                clear(err, errorBox(e));
              }
            } }, "✕"),
          )),
        ),
      ),
      h("form", { class: "inline", onsubmit: async (e: Event) => {
        e.preventDefault();
        if (!key.value) return;
        try {
          await api.post("runs/set-tag", { run_id: run.info.run_id, key: key.value, value: value.value });
          tags = [...tags.filter((x) => x.key !== key.value), { key: key.value, value: value.value }];
          draw();
        } catch (x) {
          clear(err, errorBox(x));
        }
      } }, key, value, h("button", { type: "submit" }, "Set tag")),
      err,
      systemTags.length ? h("details", null, h("summary", null, `System tags (${systemTags.length})`), h("table", { class: "kv" }, systemTags.map((t) => row(t.key, t.value)))) : null,
    );
  };
  draw();
  return box;
}

function datasets(run: Run): HTMLElement {
  const inputs = run.inputs?.dataset_inputs || [];
  if (!inputs.length) return h("p", { class: "empty" }, "No datasets.");
  return h(
    "table",
    { class: "grid" },
    h("tr", null, h("th", null, "Name"), h("th", null, "Digest"), h("th", null, "Source type"), h("th", null, "Context")),
    inputs.map((d: any) => h("tr", null, h("td", null, d.dataset?.name || ""), h("td", null, h("code", null, d.dataset?.digest || "")), h("td", null, d.dataset?.source_type || ""), h("td", null, (d.tags || []).map((t: any) => `${t.key}=${t.value}`).join(", ")))),
  );
}

export { fmtBytes };
