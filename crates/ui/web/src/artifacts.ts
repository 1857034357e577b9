// The artifact browser: the tree (listed a directory at a time), sizes, downloads, previews.
import * as api from "./api";
import * as yaml from "js-yaml";
import { h, clear, errorBox, fmtBytes } from "./dom";

const PREVIEW_BYTES = 1 << 20; // at most the first MiB of a file is read for a preview
const TEXT = /\.(txt|log|md|py|sh|toml|ini|cfg|conf|r|sql|ts|js|json|ya?ml|csv|tsv|html?|requirements)$/i;
const IMAGE = /\.(png|jpe?g|gif|bmp|webp|svg)$/i;

export function artifactBrowser(runId: string): HTMLElement {
  const tree = h("ul", { class: "tree", role: "tree" });
  const preview = h("div", { class: "preview" }, h("p", { class: "empty" }, "Select a file to preview it."));
  const box = h("div", { class: "artifacts" }, h("div", { class: "tree-pane" }, tree), preview);
  listInto(tree, runId, "", preview).then((n) => {
    if (n === 0) clear(box, h("p", { class: "empty" }, "No artifacts."));
  });
  return box;
}

async function listInto(ul: HTMLElement, runId: string, path: string, preview: HTMLElement): Promise<number> {
  clear(ul, h("li", { class: "muted" }, "Loading…"));
  let files: any[] = [];
  try {
    const r = await api.get("artifacts/list", { run_id: runId, path: path || undefined });
    files = r.files || [];
  } catch (e) {
    clear(ul, h("li", null, errorBox(e)));
    return -1;
  }
  files.sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || a.path.localeCompare(b.path));
  clear(
    ul,
    files.map((f) => {
      const name = f.path.split("/").pop();
      if (f.is_dir) {
        const sub = h("ul", { hidden: true });
        let loaded = false;
        const arrow = h("span", { class: "muted" }, "▸ ");
        const btn = h("button", { class: "tree-item dir", "aria-expanded": "false", onclick: () => {
          sub.hidden = !sub.hidden;
          btn.setAttribute("aria-expanded", String(!sub.hidden));
          arrow.textContent = sub.hidden ? "▸ " : "▾ ";
          if (!loaded) {
            loaded = true;
            listInto(sub, runId, f.path, preview);
          }
        } }, arrow, name, "/");
        return h("li", { role: "treeitem" }, btn, sub);
      }
      return h(
        "li",
        { role: "treeitem" },
        h("button", { class: "tree-item file", "data-path": f.path, onclick: () => showPreview(preview, runId, f.path, Number(f.file_size)) }, name),
        h("span", { class: "muted small" }, ` ${fmtBytes(f.file_size)}`),
      );
    }),
  );
  return files.length;
}

async function showPreview(box: HTMLElement, runId: string, path: string, size: number) {
  const url = api.artifactUrl(runId, path);
  const name = path.split("/").pop() || path;
  const head = h("div", { class: "preview-head" }, h("strong", null, path), " ", h("span", { class: "muted" }, fmtBytes(size)), " ", h("a", { href: url, download: name }, "Download"));
  clear(box, head, h("p", { class: "muted" }, "Loading…"));
  try {
    if (IMAGE.test(name)) {
      // An <img> never runs script, not even from an SVG.
      clear(box, head, h("img", { src: url, alt: name, class: "artifact-img" }));
      return;
    }
    if (!TEXT.test(name) && name !== "MLmodel" && size > 0 && !(await looksTextual(url))) {
      clear(box, head, h("p", { class: "empty" }, "No preview for this file type; download it instead."));
      return;
    }
    const { text, truncated } = await readText(url);
    const note = truncated ? h("p", { class: "muted small" }, `Showing the first ${fmtBytes(PREVIEW_BYTES)}.`) : null;
    let body: HTMLElement;
    if (name === "MLmodel") body = mlmodel(text);
    else if (/\.json$/i.test(name)) body = pre(pretty(() => JSON.stringify(JSON.parse(text), null, 2), text));
    else if (/\.ya?ml$/i.test(name)) body = pre(text);
    else if (/\.(csv|tsv)$/i.test(name)) body = csvTable(text, /\.tsv$/i.test(name) ? "\t" : ",");
    else if (/\.html?$/i.test(name)) {
      // Sandboxed: no scripts, no same-origin access, no navigation of the page.
      body = h("iframe", { sandbox: "", srcdoc: text, class: "html-preview", title: name });
    } else body = pre(text);
    clear(box, head, note, body);
  } catch (e) {
    clear(box, head, errorBox(e));
  }
}

function pre(text: string) {
  return h("pre", { class: "text-preview" }, text);
}
function pretty(f: () => string, fallback: string) {
  try {
    return f();
  } catch {
    return fallback;
  }
}

async function readText(url: string): Promise<{ text: string; truncated: boolean }> {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${res.status}: ${(await res.text()).slice(0, 300)}`);
  const reader = res.body!.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    if (n >= PREVIEW_BYTES) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  const all = new Uint8Array(Math.min(n, PREVIEW_BYTES));
  let off = 0;
  for (const c of chunks) {
    const part = c.subarray(0, all.length - off);
    all.set(part, off);
    off += part.length;
    if (off >= all.length) break;
  }
  return { text: new TextDecoder("utf-8", { fatal: false }).decode(all), truncated };
}

async function looksTextual(url: string): Promise<boolean> {
  const { text } = await readText(url);
  return !text.slice(0, 4096).includes("\u0000") && !text.slice(0, 4096).includes("\ufffd");
}

function csvTable(text: string, sep: string): HTMLElement {
  const rows = parseCsv(text, sep, 500);
  if (!rows.length) return h("p", { class: "empty" }, "Empty file.");
  const [header, ...body] = rows;
  return h("div", { class: "table-wrap" }, h("table", { class: "grid csv" }, h("thead", null, h("tr", null, header.map((c) => h("th", null, c)))), h("tbody", null, body.map((r) => h("tr", null, r.map((c) => h("td", null, c)))))));
}

/** RFC 4180 CSV (quoted fields, doubled quotes), the first `limit` rows. */
export function parseCsv(text: string, sep: string, limit: number): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length && rows.length < limit; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === sep) {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if ((field !== "" || row.length) && rows.length < limit) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function mlmodel(text: string): HTMLElement {
  let doc: any;
  try {
    doc = yaml.load(text, { schema: yaml.JSON_SCHEMA });
  } catch {
    return pre(text);
  }
  const flavors = doc?.flavors && typeof doc.flavors === "object" ? Object.entries(doc.flavors) : [];
  const sig = doc?.signature || {};
  const schemaTable = (label: string, json: unknown) => {
    let cols: any[] = [];
    try {
      cols = typeof json === "string" ? JSON.parse(json) : Array.isArray(json) ? json : [];
    } catch {
      return null;
    }
    if (!cols.length) return null;
    return h("div", null, h("h4", null, label), h("table", { class: "grid signature" }, h("tr", null, h("th", null, "Name"), h("th", null, "Type"), h("th", null, "Shape / details")), cols.map((c: any) => h("tr", null, h("td", null, c.name ?? ""), h("td", null, c.type === "tensor" ? `tensor (${c["tensor-spec"]?.dtype ?? ""})` : String(c.type ?? "")), h("td", null, c["tensor-spec"]?.shape ? JSON.stringify(c["tensor-spec"].shape) : c.required === false ? "optional" : "")))));
  };
  return h(
    "div",
    { class: "mlmodel" },
    h("h4", null, "Flavors"),
    h("table", { class: "grid" }, flavors.map(([name, conf]: [string, any]) => h("tr", null, h("th", null, name), h("td", null, conf && typeof conf === "object" ? Object.entries(conf).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(", ") : "")))),
    schemaTable("Signature inputs", sig.inputs),
    schemaTable("Signature outputs", sig.outputs),
    h("details", null, h("summary", null, "MLmodel file"), pre(text)),
  );
}
