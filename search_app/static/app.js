// imgsearch web page: search by an image, click a result for "more like this",
// load a folder with a live progress bar. Plain DOM, no framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, lastSearch: null, requests: 0 };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

// Answers can arrive out of order: leaving Min score fires "change" (a search) just before the
// click starts another, and a slow duplicates answer can land after a quick 422. Only the newest
// request may draw results or status, so a stale answer never hides a newer one.
function begin() {
  const ticket = ++state.requests;
  return () => ticket === state.requests;
}

async function api(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function params() {
  const query = new URLSearchParams({ top_k: $("top-k").value, collection: $("collection").value });
  const label = $("label").value.trim();
  if (label) query.set("label", label);
  const minScore = $("min-score").value.trim();
  if (minScore) query.set("min_score", minScore);
  return query;
}

function showResults(data, title) {
  const list = $("results");
  list.replaceChildren();
  $("results-title").hidden = false;
  const minScore = $("min-score").value.trim();
  const threshold = minScore ? ` at least ${minScore} similar` : "";
  $("results-title").textContent = `${title} — ${data.results.length} results${threshold} in ${data.took_ms} ms`;
  for (const result of data.results) {
    const item = document.createElement("li");
    item.tabIndex = 0;
    item.dataset.id = result.id;
    item.title = "More like this";
    const image = document.createElement("img");
    image.src = result.thumbnail_url;
    image.alt = result.path;
    image.loading = "lazy";
    const meta = document.createElement("div");
    meta.className = "meta";
    const score = document.createElement("div");
    score.className = "score";
    score.textContent = result.score.toFixed(4);
    const path = document.createElement("div");
    path.className = "path";
    path.textContent = result.path;
    const labels = document.createElement("div");
    labels.className = "labels";
    labels.textContent = result.labels.join(", ");
    meta.append(score, path, labels);
    item.append(image, meta);
    item.addEventListener("click", () => moreLikeThis(result));
    item.addEventListener("keydown", (event) => { if (event.key === "Enter") moreLikeThis(result); });
    list.append(item);
  }
}

async function searchByFile() {
  if (!state.file) return;
  const form = new FormData();
  form.append("image", state.file);
  setStatus("Searching…");
  const current = begin();
  try {
    const data = await api(`/api/search?${params()}`, { method: "POST", body: form });
    if (!current()) return;
    showResults(data, `Like ${state.file.name}`);
    setStatus("");
    state.lastSearch = searchByFile;
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

async function moreLikeThis(result) {
  setStatus("Searching…");
  $("query-preview").src = result.thumbnail_url;
  $("query-preview").hidden = false;
  $("drop-hint").hidden = true;
  const current = begin();
  try {
    const data = await api(`/api/images/${result.id}/similar?${params()}`);
    if (!current()) return;
    showResults(data, `More like ${result.path.split("/").pop()}`);
    setStatus("");
    state.lastSearch = () => moreLikeThis(result);
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

async function showDuplicates(name) {
  setStatus(`Looking for duplicates in ${name}…`);
  const query = new URLSearchParams();
  const minScore = $("min-score").value.trim();
  if (minScore) query.set("min_score", minScore);
  const current = begin();
  try {
    const data = await api(`/api/collections/${encodeURIComponent(name)}/duplicates?${query}`);
    if (!current()) return;
    const list = $("results");
    list.replaceChildren();
    $("results-title").hidden = false;
    $("results-title").textContent =
      `Duplicates in ${name} — ${data.groups.length} groups at least ${data.min_score} similar, in ${data.took_ms} ms`;
    data.groups.forEach((group, number) => {
      const item = document.createElement("li");
      item.className = "group";
      const title = document.createElement("div");
      title.className = "group-title";
      title.textContent = `Group ${number + 1}: ${group.size} images, similarity ≥ ${group.score.toFixed(4)}`;
      const images = document.createElement("div");
      images.className = "group-images";
      for (const image of group.images) {
        const figure = document.createElement("figure");
        const thumbnail = document.createElement("img");
        thumbnail.src = image.thumbnail_url;
        thumbnail.alt = image.path;
        thumbnail.loading = "lazy";
        const caption = document.createElement("figcaption");
        const size = image.width ? `${image.width}×${image.height}` : "";
        caption.textContent = `${image.score.toFixed(4)} ${size} ${image.path}`;
        figure.append(thumbnail, caption);
        images.append(figure);
      }
      item.append(title, images);
      list.append(item);
    });
    setStatus(data.groups.length ? "" : `No duplicates in ${name} at min score ${data.min_score}`);
    state.lastSearch = () => showDuplicates(name);
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

function pick(file) {
  if (!file) return;
  state.file = file;
  const preview = $("query-preview");
  if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  $("drop-hint").hidden = true;
  $("search-again").disabled = false;
  searchByFile();
}

async function loadCollections() {
  try {
    const data = await api("/api/collections");
    const select = $("collection");
    const chosen = select.value || data.default;
    select.replaceChildren();
    const names = data.collections.map((c) => c.name);
    if (!names.includes(data.default)) names.unshift(data.default);
    for (const name of names) select.append(new Option(name, name, false, name === chosen));
    const list = $("collections");
    list.replaceChildren();
    for (const collection of data.collections) {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = collection.name;
      const count = document.createElement("span");
      count.textContent = collection.count.toLocaleString();
      const duplicates = document.createElement("button");
      duplicates.type = "button";
      duplicates.className = "duplicates";
      duplicates.textContent = "Duplicates";
      duplicates.title = `Groups of copies in ${collection.name} (Min score, if set, from 0.5)`;
      duplicates.addEventListener("click", () => showDuplicates(collection.name));
      item.append(name, count, duplicates);
      list.append(item);
    }
    await loadLabels();
  } catch (error) {
    setStatus(`Collections unavailable: ${error.message}`, true);
  }
}

async function loadLabels() {
  const datalist = $("labels");
  datalist.replaceChildren();
  try {
    const data = await api(`/api/collections/${encodeURIComponent($("collection").value)}`);
    for (const label of Object.keys(data.labels).slice(0, 200)) datalist.append(new Option(label));
  } catch (_) { /* an empty collection has no labels */ }
}

async function startIndex(event) {
  event.preventDefault();
  const body = { path: $("index-path").value.trim() };
  const collection = $("index-collection").value.trim();
  if (collection) body.collection = collection;
  const headers = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) headers["X-API-Key"] = key;
  $("index-progress").hidden = false;
  const text = $("index-text");
  text.classList.remove("error");
  text.textContent = "Starting…";
  try {
    const started = await api("/api/index", { method: "POST", headers, body: JSON.stringify(body) });
    followRun(started.run_id);
  } catch (error) {
    text.textContent = error.message;
    text.classList.add("error");
  }
}

async function followRun(runId) {
  const bar = $("index-bar");
  const text = $("index-text");
  for (;;) {
    let run;
    try {
      run = await api(`/api/index/${runId}`);
    } catch (error) {
      text.textContent = error.message;
      text.classList.add("error");
      return;
    }
    const total = run.total || 0;
    bar.value = total ? (100 * run.processed) / total : 0;
    text.textContent = `${run.state}: ${run.processed || 0} of ${total || "?"} images, ${run.failed || 0} failed`;
    if (!["PENDING", "RUNNING", "SCHEDULED"].includes(run.state)) {
      if (run.state === "COMPLETED") {
        bar.value = 100;
        const s = run.summary || {};
        text.textContent = `Done: ${s.indexed} indexed, ${s.skipped} unchanged, ${s.failed} failed in ${s.seconds} s`;
      } else {
        text.textContent = `${run.state}: ${run.error || "see the Prefect UI"}`;
        text.classList.add("error");
      }
      loadCollections();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function wireDropZone() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (event) => pick(event.target.files[0]));
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    pick(event.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", (event) => { if (event.key === "Enter") $("file-input").click(); });
}

wireDropZone();
$("search-again").addEventListener("click", () => state.lastSearch && state.lastSearch());
$("collection").addEventListener("change", () => { loadLabels(); if (state.lastSearch) state.lastSearch(); });
$("top-k").addEventListener("change", () => state.lastSearch && state.lastSearch());
$("min-score").addEventListener("change", () => state.lastSearch && state.lastSearch());
$("index-form").addEventListener("submit", startIndex);
loadCollections();
