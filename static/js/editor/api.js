// The labs REST API as seen from the browser: JSON in and out, session auth with the CSRF token.

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export class ApiError extends Error {
  constructor(status, body) {
    const errors = (body && body.errors) || [];
    const text = errors.length
      ? errors.map((e) => (e.path ? `${e.path}: ${e.message}` : e.message)).join("; ")
      : (body && body.detail) || `HTTP ${status}`;
    super(text);
    this.status = status;
    this.body = body;
  }
}

export async function request(method, url, body, { form = false } = {}) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    if (form) {
      init.body = body;
    } else {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const response = await fetch(url, init);
  let data = null;
  if (response.status !== 204) {
    const type = response.headers.get("Content-Type") || "";
    data = type.includes("json") ? await response.json() : await response.text();
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const labs = {
  list: () => request("GET", "/api/labs/"),
  get: (id) => request("GET", `/api/labs/${id}/`),
  create: (name, document) => request("POST", "/api/labs/", document ? { name, document } : { name }),
  save: (id, version, document, name) =>
    request("PUT", `/api/labs/${id}/`, name === undefined ? { version, document } : { version, document, name }),
  patch: (id, fields) => request("PATCH", `/api/labs/${id}/`, fields),
  remove: (id) => request("DELETE", `/api/labs/${id}/`),
  duplicate: (id, name) => request("POST", `/api/labs/${id}/duplicate/`, name ? { name } : {}),
  importFile: (file) => {
    const data = new FormData();
    data.append("file", file);
    return request("POST", "/api/labs/import/", data, { form: true });
  },
  uplinks: (id) => request("GET", `/api/labs/${id}/uplinks/`),
  exportUrl: (id, format) => `/api/labs/${id}/export?format=${encodeURIComponent(format)}`,
};

/** Import a lab file and open the new lab; its import warnings wait in sessionStorage for the editor to show. */
export async function importAndOpen(file) {
  const result = await labs.importFile(file);
  const warnings = result.warnings.map((w) => `${w.path}: ${w.message}`);
  if (warnings.length) sessionStorage.setItem("topolab-import-warnings", JSON.stringify(warnings));
  window.location.assign(`/labs/${result.lab.id}/`);
}

export const images = () => request("GET", "/api/images/");
