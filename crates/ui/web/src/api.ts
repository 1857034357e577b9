// The REST API the UI uses: Cairn's `/ajax-api/2.0/mlflow/...`, the same handlers clients use,
// and the UI's own reads under `/ajax-api/2.0/cairn/...` (column keys, downsampled histories).
// URLs are relative to the page's <base>, so a --static-prefix needs nothing here.

export class ApiError extends Error {
  constructor(
    message: string,
    public code: string,
    public status: number,
  ) {
    super(message);
  }
}

async function request(method: string, path: string, body?: unknown, query?: URLSearchParams, api = "mlflow"): Promise<any> {
  let url = `ajax-api/2.0/${api}/${path}`;
  if (query && [...query.keys()].length) url += `?${query}`;
  const init: RequestInit = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) {
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!res.ok) {
    throw new ApiError(data.message || `${res.status} ${res.statusText}`, data.error_code || String(res.status), res.status);
  }
  return data;
}

type Params = Record<string, string | number | (string | number)[] | undefined>;
function toQuery(params: Params): URLSearchParams {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) v.forEach((x) => q.append(k, String(x)));
    else q.append(k, String(v));
  }
  return q;
}
export const get = (path: string, params: Params = {}): Promise<any> => request("GET", path, undefined, toQuery(params));
/** A GET of Cairn's own UI reads (`ajax-api/2.0/cairn/<path>`, README "Web UI"). */
export const cairnGet = (path: string, params: Params = {}): Promise<any> => request("GET", path, undefined, toQuery(params), "cairn");
export const post = (path: string, body: unknown) => request("POST", path, body);
export const patch = (path: string, body: unknown) => request("PATCH", path, body);
export const del = (path: string, body: unknown) => request("DELETE", path, body);

/**
 * Numbers the loads of one view, so that the answer of a load a newer one has replaced (another
 * filter, order or page, asked for before the first answer came) is dropped however late it
 * arrives: `const begin = newestOnly();` once, then in each load `const fresh = begin();` and
 * after every await `if (!fresh()) return;`.
 */
export function newestOnly(): () => () => boolean {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

/** The URL of a run's artifact file (served with nosniff and its guessed type). */
export function artifactUrl(runId: string, path: string): string {
  return `get-artifact?${new URLSearchParams({ run_id: runId, path })}`;
}

export interface KV {
  key: string;
  value: string;
}
export interface Metric {
  key: string;
  value: number;
  timestamp: number;
  step: number;
}
export interface Run {
  info: {
    run_id: string;
    run_name?: string;
    experiment_id: string;
    user_id?: string;
    status: string;
    start_time?: number;
    end_time?: number;
    artifact_uri?: string;
    lifecycle_stage: string;
  };
  data: { metrics?: Metric[]; params?: KV[]; tags?: KV[] };
  inputs?: { dataset_inputs?: any[]; model_inputs?: any[] };
  outputs?: { model_outputs?: any[] };
}

export function tag(run: Run, key: string): string | undefined {
  return run.data.tags?.find((t) => t.key === key)?.value;
}
