// Experiments list (search, create, rename, delete/restore) and the runs table beside it.
import * as api from "./api";
import { Run, tag } from "./api";
import { h, clear, errorBox, fmtTime, fmtDuration, fmtNum, enc, link } from "./dom";
import { setQuery } from "./router";

const PAGE_SIZE = 50;

interface Col {
  kind: "param" | "metric" | "tag";
  key: string;
}
const KIND_PREFIX = { param: "params", metric: "metrics", tag: "tags" } as const;

function colId(c: Col): string {
  return `${c.kind[0]}:${c.key}`;
}
function parseCols(s: string | null): Col[] {
  if (!s) return [];
  return s
    .split(",")
    .filter(Boolean)
    .map((x) => {
      const kind = ({ p: "param", m: "metric", t: "tag" } as const)[x[0] as "p" | "m" | "t"];
      return kind ? { kind, key: decodeURIComponent(x.slice(2)) } : null;
    })
    .filter((c): c is Col => c !== null);
}
function serializeCols(cols: Col[]): string {
  return cols.map((c) => `${c.kind[0]}:${encodeURIComponent(c.key)}`).join(",");
}
function quoteKey(key: string): string {
  return "`" + key.replace(/`/g, "") + "`";
}

export async function experimentsPage(root: HTMLElement, experimentId: string | undefined, query: URLSearchParams) {
  const side = h("aside", { class: "sidebar" });
  const content = h("section", { class: "content" });
  clear(root, h("div", { class: "split" }, side, content));
  let experiments: any[] = [];
  const showDeleted = query.get("deleted_experiments") === "1";
  try {
    experiments = await loadExperiments(showDeleted);
  } catch (e) {
    clear(side, errorBox(e));
  }
  if (!experimentId) {
    const first = experiments.find((e) => e.lifecycle_stage === "active");
    if (first) {
      location.replace(`#/experiments/${enc(first.experiment_id)}`);
      return;
    }
  }
  renderSidebar(side, experiments, experimentId, showDeleted);
  if (experimentId) await runsView(content, experimentId.split(","), experiments, query);
  else clear(content, h("p", { class: "empty" }, "No experiments yet. Create one on the left, or log a run with the mlflow client."));
}

async function loadExperiments(showDeleted: boolean): Promise<any[]> {
  const all: any[] = [];
  let token: string | undefined;
  // Experiment lists are short; a few pages of 1000 at most are read.
  for (let i = 0; i < 10; i++) {
    const r = await api.post("experiments/search", {
      max_results: 1000,
      view_type: showDeleted ? "ALL" : "ACTIVE_ONLY",
      order_by: ["name ASC"],
      page_token: token,
    });
    all.push(...(r.experiments || []));
    token = r.next_page_token;
    if (!token) break;
  }
  return all;
}

function renderSidebar(side: HTMLElement, experiments: any[], selected: string | undefined, showDeleted: boolean) {
  const search = h("input", { type: "search", placeholder: "Search experiments", "aria-label": "Search experiments" });
  const list = h("ul", { class: "exp-list" });
  const draw = () => {
    const needle = search.value.toLowerCase();
    clear(
      list,
      experiments
        .filter((e) => e.name.toLowerCase().includes(needle))
        .map((e) => {
          const deleted = e.lifecycle_stage === "deleted";
          const sel = selected?.split(",").includes(e.experiment_id);
          return h(
            "li",
            { class: `${sel ? "selected" : ""} ${deleted ? "deleted" : ""}` },
            link(`#/experiments/${enc(e.experiment_id)}`, e.name),
            h(
              "span",
              { class: "actions" },
              h("button", { class: "icon", title: "Rename", "aria-label": `Rename ${e.name}`, onclick: () => renameExperiment(e) }, "✎"),
              deleted
                ? h("button", { class: "icon", title: "Restore", onclick: () => act("experiments/restore", e.experiment_id) }, "↺")
                : h("button", { class: "icon", title: "Delete", "aria-label": `Delete ${e.name}`, onclick: () => deleteExperiment(e) }, "✕"),
            ),
          );
        }),
    );
    if (!list.childElementCount) list.append(h("li", { class: "empty" }, "No experiments match."));
  };
  search.addEventListener("input", draw);
  draw();
  const err = h("div");
  const act = async (path: string, id: string) => {
    try {
      await api.post(path, { experiment_id: id });
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (e) {
      clear(err, errorBox(e));
    }
  };
  const deleteExperiment = (e: any) => {
    if (confirm(`Delete experiment "${e.name}"?`)) act("experiments/delete", e.experiment_id);
  };
  const renameExperiment = async (e: any) => {
    const name = prompt("New name", e.name);
    if (!name || name === e.name) return;
    try {
      await api.post("experiments/update", { experiment_id: e.experiment_id, new_name: name });
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (x) {
      clear(err, errorBox(x));
    }
  };
  const create = async () => {
    const name = prompt("Experiment name");
    if (!name) return;
    try {
      const r = await api.post("experiments/create", { name });
      location.hash = `#/experiments/${enc(r.experiment_id)}`;
    } catch (x) {
      clear(err, errorBox(x));
    }
  };
  const toggle = h("label", { class: "small" }, h("input", { type: "checkbox", checked: showDeleted, onchange: () => {
    const base = selected ? `#/experiments/${enc(selected)}` : "#/experiments";
    location.hash = showDeleted ? base : `${base}?deleted_experiments=1`;
  } }), " show deleted");
  clear(side, h("div", { class: "side-head" }, h("h2", null, "Experiments"), h("button", { onclick: create }, "+ New")), search, toggle, err, list);
}

async function runsView(content: HTMLElement, experimentIds: string[], experiments: any[], query: URLSearchParams) {
  const exp = experiments.find((e) => e.experiment_id === experimentIds[0]);
  const title = experimentIds.length > 1 ? `${experimentIds.length} experiments` : exp ? exp.name : `Experiment ${experimentIds[0]}`;
  const state = {
    filter: query.get("filter") || "",
    order: query.get("order") || "attributes.start_time DESC",
    cols: parseCols(query.get("cols")),
    deleted: query.get("deleted") === "1",
  };
  const saveState = () => {
    const q = new URLSearchParams();
    if (state.filter) q.set("filter", state.filter);
    if (state.order !== "attributes.start_time DESC") q.set("order", state.order);
    if (state.cols.length) q.set("cols", serializeCols(state.cols));
    if (state.deleted) q.set("deleted", "1");
    setQuery(q);
  };
  const filterInput = h("input", {
    type: "search",
    class: "filter",
    value: state.filter,
    placeholder: `metrics.acc > 0.9 AND (params.lr = '0.1' OR tags.team = 'x')`,
    "aria-label": "Filter runs",
    spellcheck: "false",
  });
  const filterError = h("div", { class: "filter-error", role: "alert" });
  const table = h("table", { class: "runs", tabindex: "0" });
  const status = h("div", { class: "pager" });
  const picker = h("div", { class: "picker", hidden: true });
  // type=button: inside the filter's form, a plain button would submit it.
  const compareBtn = h("button", { type: "button", disabled: true }, "Compare");
  const deleteBtn = h("button", { type: "button", disabled: true }, "Delete");
  const restoreBtn = h("button", { type: "button", disabled: true, hidden: !state.deleted }, "Restore");
  const deletedToggle = h("label", { class: "small" }, h("input", { type: "checkbox", checked: state.deleted }), " deleted runs");
  const selected = new Set<string>();
  let runs: Run[] = [];
  let extra: Run[] = [];
  let tokens: (string | undefined)[] = [undefined];
  let page = 0;
  let keys = { param: new Set<string>(), metric: new Set<string>(), tag: new Set<string>() };
  // Column discovery: every key of the experiments' runs, from `cairn/runs/keys` (a page of
  // KEYS_PAGE per kind; "more" reads the next), merged with the keys of the runs shown.
  const KEYS_PAGE = 500;
  const keyPages: Record<Col["kind"], { token?: string; loaded: boolean; scanned?: number; error?: unknown }> = {
    param: { loaded: false },
    metric: { loaded: false },
    tag: { loaded: false },
  };
  const KIND_API = { param: "params", metric: "metrics", tag: "tags" } as const;
  async function loadKeys(kind: Col["kind"]) {
    const st = keyPages[kind];
    try {
      const r = await api.cairnGet("runs/keys", { experiment_ids: experimentIds, kind: KIND_API[kind], max_results: KEYS_PAGE, page_token: st.token });
      for (const k of r.keys || []) if (kind !== "tag" || !k.startsWith("mlflow.")) keys[kind].add(k);
      st.token = r.next_page_token;
      st.scanned = r.runs_scanned;
      st.error = undefined;
    } catch (e) {
      st.error = e;
    }
    st.loaded = true;
  }
  async function openPicker() {
    const first = (Object.keys(keyPages) as Col["kind"][]).filter((k) => !keyPages[k].loaded);
    if (first.length) {
      clear(picker, h("span", { class: "muted" }, "Loading keys…"));
      await Promise.all(first.map(loadKeys));
    }
    drawPicker();
  }

  clear(
    content,
    h("div", { class: "content-head" }, h("h1", null, title), exp ? h("span", { class: "muted small" }, `ID ${exp.experiment_id}`) : null),
    h(
      "form",
      { class: "toolbar", onsubmit: (e: Event) => { e.preventDefault(); state.filter = filterInput.value.trim(); tokens = [undefined]; page = 0; saveState(); load(); } },
      filterInput,
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", "aria-expanded": "false", onclick: (e: Event) => { picker.hidden = !picker.hidden; (e.currentTarget as HTMLElement).setAttribute("aria-expanded", String(!picker.hidden)); if (!picker.hidden) openPicker(); } }, "Columns"),
      compareBtn,
      deleteBtn,
      restoreBtn,
      deletedToggle,
    ),
    filterError,
    picker,
    h("div", { class: "table-wrap" }, table),
    status,
  );
  deletedToggle.querySelector("input")!.addEventListener("change", (e) => {
    state.deleted = (e.target as HTMLInputElement).checked;
    restoreBtn.hidden = !state.deleted;
    tokens = [undefined];
    page = 0;
    saveState();
    load();
  });
  compareBtn.addEventListener("click", () => {
    location.hash = `#/compare-runs?runs=${enc(JSON.stringify([...selected]))}&experiments=${enc(JSON.stringify(experimentIds))}`;
  });
  const bulk = async (path: string) => {
    try {
      for (const id of selected) await api.post(path, { run_id: id });
      selected.clear();
      load();
    } catch (e) {
      clear(filterError, errorBox(e));
    }
  };
  deleteBtn.addEventListener("click", () => {
    if (confirm(`Delete ${selected.size} run(s)?`)) bulk("runs/delete");
  });
  restoreBtn.addEventListener("click", () => bulk("runs/restore"));

  function drawPicker() {
    const section = (kind: Col["kind"], label: string) => {
      const ks = [...keys[kind]].sort();
      return h(
        "fieldset",
        null,
        h("legend", null, label),
        ks.length
          ? ks.map((k) => {
              const on = state.cols.some((c) => c.kind === kind && c.key === k);
              return h(
                "label",
                { class: "pick" },
                h("input", {
                  type: "checkbox",
                  checked: on,
                  "data-col": colId({ kind, key: k }),
                  onchange: (e: Event) => {
                    if ((e.target as HTMLInputElement).checked) state.cols.push({ kind, key: k });
                    else state.cols = state.cols.filter((c) => !(c.kind === kind && c.key === k));
                    saveState();
                    drawTable();
                  },
                }),
                " ",
                k,
              );
            })
          : h("span", { class: "muted" }, "none"),
        keyPages[kind].error ? errorBox(keyPages[kind].error) : null,
        keyPages[kind].scanned ? h("div", { class: "muted small" }, `Keys of the ${keyPages[kind].scanned} most recent runs (this store keeps no index of keys).`) : null,
        keyPages[kind].token
          ? h("button", { type: "button", class: "more", onclick: async () => { await loadKeys(kind); drawPicker(); } }, `More ${label.toLowerCase()}…`)
          : null,
      );
    };
    clear(picker, section("param", "Params"), section("metric", "Metrics"), section("tag", "Tags"));
  }

  function sortHeader(label: string, orderKey: string | null) {
    if (!orderKey) return h("th", null, label);
    const [curKey, curDir] = splitOrder(state.order);
    const active = curKey === orderKey;
    const arrow = active ? (curDir === "ASC" ? " ▲" : " ▼") : "";
    return h(
      "th",
      { class: "sortable", "aria-sort": active ? (curDir === "ASC" ? "ascending" : "descending") : "none" },
      h(
        "button",
        {
          class: "th-btn",
          onclick: () => {
            state.order = `${orderKey} ${active && curDir === "DESC" ? "ASC" : "DESC"}`;
            tokens = [undefined];
            page = 0;
            saveState();
            load();
          },
        },
        label + arrow,
      ),
    );
  }

  function drawTable() {
    const head = h(
      "tr",
      null,
      h("th", null, h("input", {
        type: "checkbox",
        "aria-label": "Select all",
        checked: runs.length > 0 && runs.every((r) => selected.has(r.info.run_id)),
        onchange: (e: Event) => {
          for (const r of runs) (e.target as HTMLInputElement).checked ? selected.add(r.info.run_id) : selected.delete(r.info.run_id);
          drawTable();
        },
      })),
      sortHeader("Run name", "attributes.run_name"),
      sortHeader("Status", "attributes.status"),
      sortHeader("Started", "attributes.start_time"),
      sortHeader("Duration", null),
      sortHeader("User", "attributes.user_id"),
      sortHeader("Source", null),
      state.cols.map((c) => sortHeader(`${c.key}`, `${KIND_PREFIX[c.kind]}.${quoteKey(c.key)}`)),
    );
    // Nested runs: a child is shown under its parent, also when one of the two is on another
    // page of the table (`extra`: read after the page, marked "other page").
    const all = [...runs, ...extra.filter((x) => !runs.some((r) => r.info.run_id === x.info.run_id))];
    const byId = new Map(all.map((r) => [r.info.run_id, r]));
    const onPage = new Set(runs.map((r) => r.info.run_id));
    const children = new Map<string, Run[]>();
    for (const r of all) {
      const parent = tag(r, "mlflow.parentRunId");
      if (parent && parent !== r.info.run_id && byId.has(parent)) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent)!.push(r);
      }
    }
    const rootOf = (r: Run): Run => {
      for (let i = 0; i < 20; i++) {
        const p = byId.get(tag(r, "mlflow.parentRunId") || "");
        if (!p || p === r) break;
        r = p;
      }
      return r;
    };
    const emitted = new Set<string>();
    const rows: HTMLElement[] = [];
    const addRow = (r: Run, depth: number) => {
      const id = r.info.run_id;
      const kids = children.get(id) || [];
      const cell = (c: Col) => {
        if (c.kind === "metric") return fmtNum(r.data.metrics?.find((m) => m.key === c.key)?.value);
        const list = c.kind === "param" ? r.data.params : r.data.tags;
        return list?.find((x) => x.key === c.key)?.value ?? "";
      };
      if (emitted.has(id)) return;
      emitted.add(id);
      const source = tag(r, "mlflow.source.name") || "";
      const elsewhere = !onPage.has(id);
      rows.push(
        h(
          "tr",
          { "data-run-id": id, class: `${depth ? "child" : ""} ${elsewhere ? "elsewhere" : ""}`, title: elsewhere ? "On another page of this table" : null },
          h("td", null, h("input", {
            type: "checkbox",
            "aria-label": `Select ${r.info.run_name || id}`,
            checked: selected.has(id),
            onchange: (e: Event) => {
              (e.target as HTMLInputElement).checked ? selected.add(id) : selected.delete(id);
              updateButtons();
            },
          })),
          h(
            "td",
            { class: "name", style: depth ? `padding-left:${depth * 1.2 + 0.5}em` : null },
            depth ? "↳ " : kids.length ? h("span", { class: "muted", title: `${kids.length} child run(s)` }, "▾ ") : null,
            link(`#/experiments/${enc(r.info.experiment_id)}/runs/${enc(id)}`, r.info.run_name || id),
            elsewhere ? h("span", { class: "muted small" }, " (other page)") : null,
          ),
          h("td", null, h("span", { class: `status ${r.info.status}` }, r.info.status)),
          h("td", null, fmtTime(r.info.start_time)),
          h("td", null, r.info.status === "RUNNING" ? "" : fmtDuration(r.info.start_time, r.info.end_time)),
          h("td", null, r.info.user_id || ""),
          h("td", { class: "source", title: source }, source.split("/").pop()),
          state.cols.map((c) => h("td", { class: c.kind === "metric" ? "num" : "" }, cell(c))),
        ),
      );
      for (const k of kids) addRow(k, depth + 1);
    };
    for (const r of runs) addRow(rootOf(r), 0);
    clear(
      table,
      h("thead", null, head),
      h("tbody", null, rows.length ? rows : h("tr", null, h("td", { colspan: 7 + state.cols.length, class: "empty" }, state.filter ? "No runs match the filter." : "No runs in this experiment yet."))),
    );
    updateButtons();
  }

  function updateButtons() {
    compareBtn.disabled = selected.size < 1;
    deleteBtn.disabled = selected.size < 1 || state.deleted;
    restoreBtn.disabled = selected.size < 1;
    compareBtn.textContent = selected.size ? `Compare (${selected.size})` : "Compare";
  }

  function drawPager(hasNext: boolean) {
    clear(
      status,
      h("button", { disabled: page === 0, onclick: () => { page--; load(); } }, "‹ Previous"),
      h("span", null, ` Page ${page + 1} · ${runs.length} runs `),
      h("button", { disabled: !hasNext, onclick: () => { page++; load(); } }, "Next ›"),
    );
  }

  const begin = api.newestOnly();
  async function load() {
    const fresh = begin();
    clear(status, h("span", { class: "muted" }, "Loading runs…"));
    clear(filterError);
    filterInput.classList.remove("invalid");
    try {
      const r = await api.post("runs/search", {
        experiment_ids: experimentIds,
        filter: state.filter,
        order_by: [state.order],
        max_results: PAGE_SIZE,
        run_view_type: state.deleted ? "DELETED_ONLY" : "ACTIVE_ONLY",
        page_token: tokens[page],
      });
      if (!fresh()) return;
      runs = r.runs || [];
      tokens[page + 1] = r.next_page_token;
      for (const run of runs) {
        run.data.params?.forEach((p) => keys.param.add(p.key));
        run.data.metrics?.forEach((m) => keys.metric.add(m.key));
        run.data.tags?.forEach((t) => { if (!t.key.startsWith("mlflow.")) keys.tag.add(t.key); });
      }
      extra = [];
      drawTable();
      drawPager(Boolean(r.next_page_token));
      if (!picker.hidden) drawPicker();
      loadRelatives(runs);
    } catch (e) {
      if (!fresh()) return;
      runs = [];
      drawTable();
      clear(status);
      filterInput.classList.add("invalid");
      clear(filterError, errorBox(e));
    }
  }
  // The relatives of the page's runs on other pages of the same list (same filter and view):
  // the children of its runs (at most 100) and the parents of its children.
  async function loadRelatives(page: Run[]) {
    const ids = page.map((r) => r.info.run_id).filter((id) => /^[\w-]+$/.test(id));
    const onPage = new Set(ids);
    const parents = [...new Set(page.map((r) => tag(r, "mlflow.parentRunId") || "").filter((p) => p && !onPage.has(p) && /^[\w-]+$/.test(p)))];
    if (!ids.length) return;
    const quote = (v: string) => `'${v}'`;
    const and = (clause: string) => (state.filter ? `(${state.filter}) AND ${clause}` : clause);
    const kids = `(${ids.map((id) => `tags.\`mlflow.parentRunId\` = ${quote(id)}`).join(" OR ")})`;
    try {
      const [c, p] = await Promise.all([
        api.post("runs/search", {
          experiment_ids: experimentIds,
          filter: and(kids),
          order_by: [state.order],
          max_results: 100,
          run_view_type: state.deleted ? "DELETED_ONLY" : "ACTIVE_ONLY",
        }),
        parents.length
          ? api.post("runs/search", {
              experiment_ids: experimentIds,
              filter: and(`attributes.run_id IN (${parents.map(quote).join(", ")})`),
              max_results: parents.length,
              run_view_type: state.deleted ? "DELETED_ONLY" : "ACTIVE_ONLY",
            })
          : Promise.resolve({}),
      ]);
      if (runs !== page) return; // another page was loaded meanwhile
      extra = [...(p.runs || []), ...(c.runs || [])].filter((r: Run) => !onPage.has(r.info.run_id));
      if (extra.length) drawTable();
    } catch {
      // The page itself is shown; its relatives elsewhere are a nicety.
    }
  }
  // Keyboard: ↑/↓ move between rows, Enter opens the run, space selects it.
  table.addEventListener("keydown", (e) => {
    const rows = [...table.querySelectorAll<HTMLTableRowElement>("tbody tr[data-run-id]")];
    if (!rows.length) return;
    let i = rows.findIndex((r) => r.classList.contains("focus"));
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      rows[i]?.classList.remove("focus");
      i = Math.max(0, Math.min(rows.length - 1, i + (e.key === "ArrowDown" ? 1 : -1)));
      rows[i].classList.add("focus");
      rows[i].scrollIntoView({ block: "nearest" });
    } else if (e.key === "Enter" && i >= 0) {
      rows[i].querySelector<HTMLAnchorElement>("td.name a")?.click();
    } else if (e.key === " " && i >= 0) {
      e.preventDefault();
      rows[i].querySelector<HTMLInputElement>("input[type=checkbox]")?.click();
    }
  });
  await load();
}

function splitOrder(order: string): [string, string] {
  const m = /^(.*?)\s+(ASC|DESC)$/i.exec(order.trim());
  return m ? [m[1], m[2].toUpperCase()] : [order.trim(), "ASC"];
}
