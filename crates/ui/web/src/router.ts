// Hash routes, the ones MLflow's client prints (`#/experiments/<id>/runs/<run_id>`, ...).

export interface Route {
  parts: string[];
  query: URLSearchParams;
}

export function current(): Route {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, qs] = splitOnce(hash, "?");
  const parts = path
    .split("/")
    .filter((p) => p !== "")
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  return { parts, query: new URLSearchParams(qs) };
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

/** Replaces the query of the current hash without adding a history entry or re-rendering. */
export function setQuery(query: URLSearchParams): void {
  const [path] = splitOnce(location.hash, "?");
  const qs = query.toString();
  history.replaceState(null, "", qs ? `${path}?${qs}` : path);
}
