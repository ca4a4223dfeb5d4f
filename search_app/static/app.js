// imgsearch web page: browse a collection, search by an image (picked, dropped or pasted),
// open any image for "more like this" / "less like this", act on duplicate groups, watch runs.
// What is shown lives in the URL, so a page can be bookmarked, shared and reloaded.
// Plain DOM and ES modules, no framework, no CDN.
import { $, api, begin, sendJson, withCollection } from "./api.js";
import { groupItem, imageTile, runItem } from "./tiles.js";

// view: "browse" | "file" (an uploaded image: not in the URL) | "similar" | "duplicates"
const state = { view: "browse", positive: [], negative: [], image: null, next: null, file: null, undo: null };

// -- the URL ---------------------------------------------------------------------------------
const CONTROLS = { collection: "collection", top_k: "top-k", label: "label", folder: "folder", min_score: "min-score" };

function urlOf() {
  const query = new URLSearchParams();
  if (state.view === "similar" || state.view === "duplicates") query.set("view", state.view);
  for (const [name, id] of Object.entries(CONTROLS)) {
    const value = $(id).value.trim();
    if (value && !(name === "top_k" && value === "10") && !(name === "folder" && state.view !== "browse")) {
      query.set(name, value);
    }
  }
  if (state.view === "similar") {
    for (const id of state.positive) query.append("positive", id);
    for (const id of state.negative) query.append("negative", id);
  }
  if (state.image !== null) query.set("image", state.image);
  const text = query.toString();
  return text ? `?${text}` : location.pathname;
}

function remember(replace = false) {
  const url = urlOf();
  if (url === location.search || (url === location.pathname && !location.search)) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
}

function setControl(id, value) {
  const control = $(id);
  if (control.tagName === "SELECT" && value && ![...control.options].some((o) => o.value === value)) {
    control.append(new Option(value, value));
  }
  control.value = value;
}

// Draw what the URL says (a load, a reload, Back and Forward).
async function fromUrl() {
  const query = new URLSearchParams(location.search);
  for (const [name, id] of Object.entries(CONTROLS)) {
    if (name !== "collection") setControl(id, query.get(name) || (name === "top_k" ? "10" : ""));
  }
  if (query.get("collection")) setControl("collection", query.get("collection"));
  const ids = (name) => query.getAll(name).filter((v) => /^\d+$/.test(v)).map(Number);
  state.positive = ids("positive");
  state.negative = ids("negative");
  const view = query.get("view");
  if (view === "similar" && state.positive.length) await similar(false);
  else if (view === "duplicates") await duplicates($("collection").value, false);
  else await browse(false);
  const image = query.get("image");
  if (image && /^\d+$/.test(image)) openDetail({ id: Number(image) }, false);
  else closeDetail(false);
}

// -- status and results ----------------------------------------------------------------------
function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function params() {
  const query = new URLSearchParams({ top_k: $("top-k").value, collection: $("collection").value });
  const label = $("label").value.trim();
  if (label) query.set("label", label);
  const minScore = $("min-score").value.trim();
  if (minScore) query.set("min_score", minScore);
  return query;
}

function show(view, title) {
  state.view = view;
  $("folder-field").hidden = view !== "browse";
  $("results-title").hidden = false;
  $("results-title").textContent = title;
  $("search-again").disabled = view === "browse";
  drawExamples();
}

function showResults(data, title) {
  const minScore = $("min-score").value.trim();
  const threshold = minScore ? ` at least ${minScore} similar` : "";
  $("results").replaceChildren(...data.results.map((result) => imageTile(result, openDetail)));
  $("more").hidden = true;
  show(state.view, `${title} — ${data.results.length} results${threshold} in ${data.took_ms} ms`);
}

// -- browse ----------------------------------------------------------------------------------
async function browse(push = true, after = null) {
  const collection = $("collection").value;
  if (!collection) return;
  const query = new URLSearchParams({ limit: "60" });
  const label = $("label").value.trim();
  const folder = $("folder").value;
  if (label) query.set("label", label);
  if (folder) query.set("folder", folder);
  if (after) query.set("after", after);
  if (!after) {
    state.view = "browse";
    if (push) remember();
  }
  const current = begin();
  setStatus(after ? "Loading more…" : "Loading…");
  try {
    const page = await api(`/api/collections/${encodeURIComponent(collection)}/images?${query}`);
    if (!current()) return;
    const tiles = page.images.map((image) => imageTile(image, openDetail));
    if (after) $("results").append(...tiles);
    else $("results").replaceChildren(...tiles);
    state.next = page.next;
    $("more").hidden = !page.next;
    const shown = $("results").children.length;
    const filters = [label && `label ${label}`, folder && `in ${folder}`].filter(Boolean).join(", ");
    show("browse", `${collection}${filters ? ` (${filters})` : ""}: ${shown} ${page.next ? "shown, newest first" : "images, newest first"}`);
    setStatus(shown ? "" : `Nothing in ${collection}${filters ? " with these filters" : ""} yet: load a folder, or search by an image.`);
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

// -- search by an uploaded image -------------------------------------------------------------
async function searchByFile() {
  if (!state.file) return;
  const form = new FormData();
  form.append("image", state.file);
  setStatus("Searching…");
  const current = begin();
  try {
    const data = await api(`/api/search?${params()}`, { method: "POST", body: form });
    if (!current()) return;
    state.view = "file";
    state.positive = [];
    state.negative = [];
    remember();
    showResults(data, `Like ${state.file.name || "the pasted image"}`);
    setStatus("");
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
  searchByFile();
}

// -- more like these, less like those --------------------------------------------------------
async function similar(push = true) {
  const query = params();
  for (const id of state.positive) query.append("positive", id);
  for (const id of state.negative) query.append("negative", id);
  state.view = "similar";
  if (push) remember();
  setStatus("Searching…");
  const current = begin();
  try {
    const data = await api(`/api/similar?${query}`);
    if (!current()) return;
    const title = state.negative.length ? `More like ${state.positive.length}, less like ${state.negative.length}`
      : `More like ${state.positive.length === 1 ? `image ${state.positive[0]}` : `${state.positive.length} images`}`;
    showResults(data, title);
    setStatus("");
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

function drawExamples() {
  const shown = state.view === "similar";
  $("examples").hidden = !shown;
  if (!shown) return;
  const chips = (ids, kind) => ids.map((id) => {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip secondary";
    chip.textContent = `${id} ×`;
    chip.title = `Stop using image ${id}`;
    chip.setAttribute("aria-label", `Remove image ${id} from ${kind}`);
    chip.addEventListener("click", () => {
      state[kind] = state[kind].filter((other) => other !== id);
      if (state.positive.length) similar();
      else browse();
    });
    return chip;
  });
  $("positives").replaceChildren(...chips(state.positive, "positive"));
  $("negatives").replaceChildren(...chips(state.negative, "negative"));
}

// -- the detail view -------------------------------------------------------------------------
async function openDetail(image, push = true) {
  const collection = $("collection").value;
  state.image = image.id;
  if (push) remember();
  const dialog = $("detail");
  $("detail-title").textContent = image.path ? image.path.split("/").pop() : `Image ${image.id}`;
  $("detail-facts").replaceChildren();
  $("detail-image").removeAttribute("src");
  $("detail-less").disabled = !(state.view === "similar" && state.positive.length && !state.positive.includes(image.id));
  $("detail-less").title = $("detail-less").disabled ? "First search with “More like this”" : "";
  if (!dialog.open) dialog.showModal();
  $("detail-more").focus();
  try {
    const record = await api(withCollection(`/api/images/${image.id}`, collection));
    if (state.image !== image.id) return;
    $("detail-title").textContent = record.path.split("/").pop();
    $("detail-image").src = record.thumbnail_url + "&size=1024";
    $("detail-image").alt = record.path;
    $("detail-open").href = record.image_url;
    const size = record.size ? `${(record.size / 1024).toFixed(0)} KB` : "?";
    const facts = [["Path", record.path], ["Labels", record.labels.join(", ") || "none"],
      ["Size", `${record.width ?? "?"}×${record.height ?? "?"} px, ${size}`], ["Folder", record.folder],
      ["Indexed", record.indexed_at ? new Date(record.indexed_at).toLocaleString() : "?"], ["Id", String(record.id)]];
    $("detail-facts").replaceChildren(...facts.flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }));
  } catch (error) {
    $("detail-facts").textContent = error.message;
  }
}

function closeDetail(push = true) {
  state.image = null;
  if ($("detail").open) $("detail").close();
  if (push) remember(true);
}

function moreLikeThis() {
  const id = state.image;
  if (state.view !== "similar") {
    state.positive = [];
    state.negative = [];
  }
  state.negative = state.negative.filter((other) => other !== id);
  if (!state.positive.includes(id)) state.positive.push(id);
  state.image = null;
  $("detail").close();
  similar();
}

function lessLikeThis() {
  const id = state.image;
  if (!state.negative.includes(id)) state.negative.push(id);
  state.image = null;
  $("detail").close();
  similar();
}

// -- duplicates ------------------------------------------------------------------------------
async function duplicates(name, push = true) {
  if ($("collection").value !== name) setControl("collection", name);
  state.view = "duplicates";
  if (push) remember();
  setStatus(`Looking for duplicates in ${name}…`);
  const query = new URLSearchParams();
  const minScore = $("min-score").value.trim();
  if (minScore) query.set("min_score", minScore);
  const current = begin();
  try {
    const data = await api(`/api/collections/${encodeURIComponent(name)}/duplicates?${query}`);
    if (!current()) return;
    $("results").replaceChildren(...data.groups.map((group, number) =>
      groupItem(group, number, { open: openDetail, resolve: (item, keep, remove, moveTo) =>
        resolveGroup(name, item, keep, remove, moveTo) })));
    $("more").hidden = true;
    show("duplicates", `Duplicates in ${name} — ${data.groups.length} groups at least ${data.min_score} similar, in ${data.took_ms} ms`);
    setStatus(data.groups.length ? "" : `No duplicates in ${name} at min score ${data.min_score}`);
  } catch (error) {
    if (current()) setStatus(error.message, true);
  }
}

async function resolveGroup(name, item, keep, remove, moveTo) {
  const body = { keep, remove };
  if (moveTo) body.move_to = moveTo;
  try {
    const done = await sendJson(`/api/collections/${encodeURIComponent(name)}/duplicates/resolve`, body);
    const moved = done.removed.filter((image) => image.moved_to).length;
    const failed = done.removed.filter((image) => image.error);
    const text = `Kept ${done.keep.path.split("/").pop()}; removed ${done.removed.length} from the index` +
      (moved ? `, moved ${moved} files into ${moveTo}` : ", files left where they are") +
      (failed.length ? `; ${failed.length} files could not be moved: ${failed[0].error}` : "");
    item.replaceChildren(Object.assign(document.createElement("p"), { className: "resolved", textContent: text }));
    state.undo = { url: done.undo_url, name };
    $("undo-text").textContent = text;
    $("undo-bar").hidden = !done.undo_url;
    if (done.undo_url) $("undo").focus();
    loadCollections();
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function undoResolution() {
  if (!state.undo) return;
  const { url, name } = state.undo;
  try {
    const done = await sendJson(url);
    state.undo = null;
    $("undo-bar").hidden = true;
    setStatus(`Undone: ${done.restored} images back in ${name}`);
    await loadCollections();
    if (state.view === "duplicates") await duplicates(name, false);
    setStatus(`Undone: ${done.restored} images back in ${name}`);
  } catch (error) {
    setStatus(error.message, true);
  }
}

// -- collections, labels, folders ------------------------------------------------------------
async function loadCollections() {
  try {
    const data = await api("/api/collections");
    const select = $("collection");
    const chosen = select.value || new URLSearchParams(location.search).get("collection") || data.default;
    const names = data.collections.map((c) => c.name);
    if (!names.includes(data.default)) names.unshift(data.default);
    if (!names.includes(chosen)) names.push(chosen);
    select.replaceChildren(...names.map((name) => new Option(name, name, false, name === chosen)));
    select.value = chosen;
    $("collections").replaceChildren(...data.collections.map((collection) => {
      const item = document.createElement("li");
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = collection.name;
      const count = document.createElement("span");
      count.textContent = collection.count.toLocaleString();
      const button = document.createElement("button");
      button.type = "button";
      button.className = "duplicates secondary";
      button.textContent = "Duplicates";
      button.title = `Groups of copies in ${collection.name} (Min score, if set, from 0.5)`;
      button.setAttribute("aria-label", `Duplicates in ${collection.name}`);
      button.addEventListener("click", () => duplicates(collection.name));
      item.append(name, count, button);
      return item;
    }));
    await loadFilters();
  } catch (error) {
    setStatus(`Collections unavailable: ${error.message}`, true);
  }
}

async function loadFilters() {
  const folder = $("folder").value;
  try {
    const data = await api(`/api/collections/${encodeURIComponent($("collection").value)}`);
    $("labels").replaceChildren(...Object.keys(data.labels).slice(0, 200).map((label) => new Option(label)));
    $("folder").replaceChildren(new Option("any", ""), ...Object.entries(data.folders || {}).map(
      ([path, count]) => new Option(`${path} (${count})`, path)));
  } catch (_) { /* an empty collection has no labels or folders */
    $("labels").replaceChildren();
    $("folder").replaceChildren(new Option("any", ""));
  }
  setControl("folder", folder);
}

// -- runs ------------------------------------------------------------------------------------
async function loadRuns() {
  $("runs-status").textContent = "Asking Prefect…";
  try {
    const data = await api("/api/runs?limit=20");
    $("runs").replaceChildren(...data.runs.map(runItem));
    $("runs-status").textContent = data.runs.length ? "" : "No runs yet.";
  } catch (error) {
    $("runs-status").textContent = error.message;
  }
}

// -- loading a folder ------------------------------------------------------------------------
async function startIndex(event) {
  event.preventDefault();
  const body = { path: $("index-path").value.trim() };
  const collection = $("index-collection").value.trim();
  if (collection) body.collection = collection;
  $("index-progress").hidden = false;
  const text = $("index-text");
  text.classList.remove("error");
  text.textContent = "Starting…";
  try {
    const started = await sendJson("/api/index", body);
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
      await loadCollections();
      if (state.view === "browse") browse(false);
      if ($("runs-panel").open) loadRuns();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// -- wiring ----------------------------------------------------------------------------------
function again() {
  if (state.view === "file") searchByFile();
  else if (state.view === "similar") similar();
  else if (state.view === "duplicates") duplicates($("collection").value);
  else browse();
}

function wire() {
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
  document.addEventListener("paste", (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (!file || event.target.closest?.("input[type=text], input[type=number], input[type=password]")) return;
    event.preventDefault();
    pick(file);
  });
  $("search-again").addEventListener("click", again);
  $("browse").addEventListener("click", () => browse());
  $("more").addEventListener("click", () => state.next && browse(true, state.next));
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting) && state.view === "browse" && state.next && !$("more").hidden) {
      browse(true, state.next);
    }
  }, { rootMargin: "400px" }).observe($("more"));
  $("collection").addEventListener("change", async () => { await loadFilters(); again(); });
  $("top-k").addEventListener("change", () => state.view !== "browse" && again());
  $("min-score").addEventListener("change", () => state.view !== "browse" && again());
  $("label").addEventListener("change", again);
  $("folder").addEventListener("change", () => browse());
  $("detail-more").addEventListener("click", moreLikeThis);
  $("detail-less").addEventListener("click", lessLikeThis);
  $("detail").addEventListener("close", () => { if (state.image !== null) closeDetail(); });
  $("undo").addEventListener("click", undoResolution);
  $("runs-panel").addEventListener("toggle", () => { if ($("runs-panel").open) loadRuns(); });
  $("runs-refresh").addEventListener("click", loadRuns);
  $("index-form").addEventListener("submit", startIndex);
  window.addEventListener("popstate", fromUrl);
}

wire();
loadCollections().then(fromUrl);
