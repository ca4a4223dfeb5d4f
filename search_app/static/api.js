// The JSON API as the page calls it: errors become Error("status: detail"), and the API key
// typed on the page goes with every request that changes something.

export const $ = (id) => document.getElementById(id);

export async function api(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

export function sendJson(url, body) {
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) headers["X-API-Key"] = key;
  return api(url, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
}

// Only the newest request may draw: answers can arrive out of order (leaving Min score fires
// "change" just before a click starts another search), and a stale one must not hide a newer one.
let requests = 0;
export function begin() {
  const ticket = ++requests;
  return () => ticket === requests;
}

export function withCollection(url, collection) {
  return `${url}${url.includes("?") ? "&" : "?"}collection=${encodeURIComponent(collection)}`;
}
