// The model registry: registered models, a model's page with its versions, a version's page.
import * as api from "./api";
import { h, clear, errorBox, fmtTime, enc, link } from "./dom";
import { row, section } from "./run";

const STAGES = ["None", "Staging", "Production", "Archived"];

export async function modelsPage(root: HTMLElement, query: URLSearchParams) {
  const search = h("input", { type: "search", placeholder: "Search models by name", "aria-label": "Search models", value: query.get("q") || "" });
  const table = h("table", { class: "grid models" });
  const pager = h("div", { class: "pager" });
  const err = h("div");
  let tokens: (string | undefined)[] = [undefined];
  let page = 0;
  const begin = api.newestOnly();
  const load = async () => {
    const fresh = begin();
    clear(err);
    const needle = search.value.trim();
    try {
      const r = await api.get("registered-models/search", {
        filter: needle ? `name ILIKE '%${needle.replace(/'/g, "''")}%'` : undefined,
        max_results: 50,
        page_token: tokens[page],
      });
      if (!fresh()) return;
      tokens[page + 1] = r.next_page_token;
      const models = r.registered_models || [];
      clear(
        table,
        h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Latest version"), h("th", null, "Aliases"), h("th", null, "Tags"), h("th", null, "Last modified"))),
        h(
          "tbody",
          null,
          models.length
            ? models.map((m: any) => {
                const latest = (m.latest_versions || []).reduce((a: any, v: any) => (!a || Number(v.version) > Number(a.version) ? v : a), null);
                return h(
                  "tr",
                  { "data-model": m.name },
                  h("td", null, link(`#/models/${enc(m.name)}`, m.name)),
                  h("td", null, latest ? link(`#/models/${enc(m.name)}/versions/${enc(latest.version)}`, `Version ${latest.version}`) : ""),
                  h("td", null, (m.aliases || []).map((a: any) => h("span", { class: "chip" }, `@${a.alias} → v${a.version}`))),
                  h("td", null, (m.tags || []).map((t: any) => h("span", { class: "chip" }, `${t.key}: ${t.value}`))),
                  h("td", null, fmtTime(m.last_updated_timestamp)),
                );
              })
            : h("tr", null, h("td", { colspan: 5, class: "empty" }, needle ? "No models match." : "No registered models yet.")),
        ),
      );
      clear(pager, h("button", { disabled: page === 0, onclick: () => { page--; load(); } }, "‹ Previous"), ` Page ${page + 1} `, h("button", { disabled: !r.next_page_token, onclick: () => { page++; load(); } }, "Next ›"));
    } catch (e) {
      if (fresh()) clear(err, errorBox(e));
    }
  };
  clear(root, h("h1", null, "Registered models"), h("form", { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); tokens = [undefined]; page = 0; load(); } }, search, h("button", { type: "submit" }, "Search")), err, h("div", { class: "table-wrap" }, table), pager);
  await load();
}

export async function modelPage(root: HTMLElement, name: string) {
  clear(root, h("p", { class: "muted" }, "Loading model…"));
  let model: any;
  let versions: any[] = [];
  try {
    model = (await api.get("registered-models/get", { name })).registered_model;
    const r = await api.get("model-versions/search", { filter: `name = '${name.replace(/'/g, "''")}'`, max_results: 200, order_by: ["version_number DESC"] });
    versions = r.model_versions || [];
  } catch (e) {
    clear(root, errorBox(e));
    return;
  }
  const reload = () => modelPage(root, name);
  const err = h("div", { class: "action-error" });
  const aliasesByVersion = new Map<string, string[]>();
  for (const a of model.aliases || []) aliasesByVersion.set(String(a.version), [...(aliasesByVersion.get(String(a.version)) || []), a.alias]);
  const run = async (f: () => Promise<unknown>) => {
    try {
      await f();
      reload();
    } catch (e) {
      clear(err, errorBox(e));
    }
  };
  const aliasName = h("input", { placeholder: "alias", "aria-label": "Alias name" });
  const aliasVersion = h("select", { "aria-label": "Alias version" }, versions.map((v) => h("option", { value: v.version }, `Version ${v.version}`)));
  clear(
    root,
    h("nav", { class: "crumbs" }, link("#/models", "Registered models"), " › ", name),
    h("h1", null, name),
    err,
    h("table", { class: "kv" }, row("Created", fmtTime(model.creation_timestamp)), row("Last modified", fmtTime(model.last_updated_timestamp))),
    section("Description", descriptionEditor(model.description || "", (text) => api.patch("registered-models/update", { name, description: text }))),
    section(
      "Aliases",
      h("div", { class: "chips" }, (model.aliases || []).map((a: any) =>
        h("span", { class: "chip", "data-alias": a.alias }, `@${a.alias} → `, link(`#/models/${enc(name)}/versions/${enc(a.version)}`, `v${a.version}`), h("button", { class: "icon", title: "Delete alias", "aria-label": `Delete alias ${a.alias}`, onclick: () => run(() => api.del("registered-models/alias", { name, alias: a.alias })) }, "✕")),
      )),
      versions.length ? h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); if (aliasName.value) run(() => api.post("registered-models/alias", { name, alias: aliasName.value, version: aliasVersion.value })); } }, aliasName, aliasVersion, h("button", { type: "submit" }, "Set alias")) : null,
    ),
    section("Tags", tagsEditor(model.tags || [], (key, value) => api.post("registered-models/set-tag", { name, key, value }), (key) => api.del("registered-models/delete-tag", { name, key }), reload)),
    section(
      `Versions (${versions.length})`,
      h("table", { class: "grid versions" },
        h("thead", null, h("tr", null, h("th", null, "Version"), h("th", null, "Stage"), h("th", null, "Aliases"), h("th", null, "Status"), h("th", null, "Source run"), h("th", null, "Created"), h("th", null, "Description"))),
        h("tbody", null, versions.length ? versions.map((v) => h("tr", { "data-version": v.version },
          h("td", null, link(`#/models/${enc(name)}/versions/${enc(v.version)}`, `Version ${v.version}`)),
          h("td", null, stageSelect(v, run)),
          h("td", null, (aliasesByVersion.get(String(v.version)) || []).map((a) => h("span", { class: "chip" }, `@${a}`))),
          h("td", null, v.status || ""),
          h("td", null, v.run_id ? runLink(v.run_id) : ""),
          h("td", null, fmtTime(v.creation_timestamp)),
          h("td", null, v.description || ""),
        )) : h("tr", null, h("td", { colspan: 7, class: "empty" }, "No versions."))),
      ),
    ),
  );
}

function runLink(runId: string) {
  // The experiment is looked up by the run page; `#/experiments/-/runs/<id>` is enough to open it.
  return link(`#/experiments/-/runs/${enc(runId)}`, runId.slice(0, 8));
}

function stageSelect(v: any, run: (f: () => Promise<unknown>) => void) {
  const sel = h("select", { "aria-label": `Stage of version ${v.version}` }, STAGES.map((s) => h("option", { value: s, selected: (v.current_stage || "None") === s }, s)));
  sel.addEventListener("change", () => {
    const stage = sel.value;
    run(() => api.post("model-versions/transition-stage", { name: v.name, version: String(v.version), stage, archive_existing_versions: false }));
  });
  return sel;
}

export async function versionPage(root: HTMLElement, name: string, version: string) {
  clear(root, h("p", { class: "muted" }, "Loading version…"));
  let v: any;
  let model: any;
  try {
    [v, model] = await Promise.all([
      api.get("model-versions/get", { name, version }).then((r) => r.model_version),
      api.get("registered-models/get", { name }).then((r) => r.registered_model),
    ]);
  } catch (e) {
    clear(root, errorBox(e));
    return;
  }
  const reload = () => versionPage(root, name, version);
  const err = h("div", { class: "action-error" });
  const run = async (f: () => Promise<unknown>) => {
    try {
      await f();
      reload();
    } catch (e) {
      clear(err, errorBox(e));
    }
  };
  const aliases = (model.aliases || []).filter((a: any) => String(a.version) === String(version));
  const aliasName = h("input", { placeholder: "alias", "aria-label": "Alias name" });
  clear(
    root,
    h("nav", { class: "crumbs" }, link("#/models", "Registered models"), " › ", link(`#/models/${enc(name)}`, name), " › ", `Version ${version}`),
    h("h1", null, `${name} — version ${version}`),
    err,
    h("table", { class: "kv" },
      row("Stage", stageSelect(v, run)),
      row("Status", v.status || ""),
      row("Source run", v.run_id ? runLink(v.run_id) : ""),
      row("Source", h("code", null, v.source || "")),
      row("Created", fmtTime(v.creation_timestamp)),
      row("Last modified", fmtTime(v.last_updated_timestamp)),
      row("Aliases", aliases.map((a: any) => h("span", { class: "chip", "data-alias": a.alias }, `@${a.alias}`, h("button", { class: "icon", title: "Delete alias", "aria-label": `Delete alias ${a.alias}`, onclick: () => run(() => api.del("registered-models/alias", { name, alias: a.alias })) }, "✕"))),
        h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); if (aliasName.value) run(() => api.post("registered-models/alias", { name, alias: aliasName.value, version })); } }, aliasName, h("button", { type: "submit" }, "Add alias"))),
    ),
    section("Description", descriptionEditor(v.description || "", (text) => api.patch("model-versions/update", { name, version, description: text }))),
    section("Tags", tagsEditor(v.tags || [], (key, value) => api.post("model-versions/set-tag", { name, version, key, value }), (key) => api.del("model-versions/delete-tag", { name, version, key }), reload)),
  );
}

function descriptionEditor(text: string, save: (text: string) => Promise<unknown>): HTMLElement {
  const box = h("div");
  const draw = (t: string) => {
    const area = h("textarea", { rows: "3", "aria-label": "Description", value: t });
    const err = h("div");
    clear(box, t ? h("p", { class: "description" }, t) : h("p", { class: "empty" }, "No description."), h("details", null, h("summary", null, "Edit"), area, h("button", { onclick: async () => {
      try {
        await save(area.value);
        draw(area.value);
      } catch (e) {
        clear(err, errorBox(e));
      }
    } }, "Save"), err));
  };
  draw(text);
  return box;
}

function tagsEditor(tags: { key: string; value: string }[], set: (k: string, v: string) => Promise<unknown>, remove: (k: string) => Promise<unknown>, reload: () => void): HTMLElement {
  const err = h("div");
  const key = h("input", { placeholder: "key", "aria-label": "Tag key" });
  const value = h("input", { placeholder: "value", "aria-label": "Tag value" });
  const act = async (f: () => Promise<unknown>) => {
    try {
      await f();
      reload();
    } catch (e) {
      clear(err, errorBox(e));
    }
  };
  return h("div", null,
    tags.length ? h("table", { class: "kv tags" }, tags.map((t) => h("tr", null, h("th", null, t.key), h("td", null, t.value), h("td", null, h("button", { class: "icon", title: "Delete tag", "aria-label": `Delete tag ${t.key}`, onclick: () => act(() => remove(t.key)) }, "✕"))))) : h("p", { class: "empty" }, "No tags."),
    h("form", { class: "inline", onsubmit: (e: Event) => { e.preventDefault(); if (key.value) act(() => set(key.value, value.value)); } }, key, value, h("button", { type: "submit" }, "Set tag")),
    err,
  );
}
