// The page's pieces: an image tile (browse, results), a duplicate group with its actions, a run.

function element(tag, className, text) {
  const made = document.createElement(tag);
  if (className) made.className = className;
  if (text !== undefined) made.textContent = text;
  return made;
}

function thumbnail(image) {
  const picture = element("img");
  picture.src = image.thumbnail_url;
  picture.alt = image.path;
  picture.loading = "lazy";
  picture.decoding = "async";
  return picture;
}

// One image in a grid; Enter, Space or a click opens it (`open`).
export function imageTile(image, open) {
  const item = element("li");
  item.tabIndex = 0;
  item.dataset.id = image.id;
  item.title = `${image.path}: open`;
  const meta = element("div", "meta");
  if (image.score !== undefined) meta.append(element("div", "score", image.score.toFixed(4)));
  meta.append(element("div", "path", image.path), element("div", "labels", (image.labels || []).join(", ")));
  item.append(thumbnail(image), meta);
  item.addEventListener("click", () => open(image));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      open(image);
    }
  });
  return item;
}

// A duplicate group: pick the image to keep (the suggested one is first and ticked), then take the
// others out of the index, their files left where they are or moved into a folder.
export function groupItem(group, number, { open, resolve }) {
  const item = element("li", "group");
  item.dataset.group = number;
  item.append(element("div", "group-title",
    `Group ${number + 1}: ${group.size} images, similarity ≥ ${group.score.toFixed(4)}`));
  const images = element("div", "group-images");
  group.images.forEach((image, index) => {
    const figure = element("figure");
    const picture = thumbnail(image);
    picture.tabIndex = 0;
    picture.addEventListener("click", () => open(image));
    picture.addEventListener("keydown", (event) => { if (event.key === "Enter") open(image); });
    const caption = element("figcaption");
    const size = image.width ? `${image.width}×${image.height}` : "";
    const keep = element("label", "keep");
    const radio = element("input");
    radio.type = "radio";
    radio.name = `keep-${number}`;
    radio.value = image.id;
    radio.checked = index === 0;
    keep.append(radio, index === 0 ? " keep (suggested)" : " keep");
    caption.append(element("span", "score", image.score.toFixed(4)), ` ${size} `,
                   element("span", "path", image.path), keep);
    figure.append(picture, caption);
    images.append(figure);
  });
  const actions = element("div", "group-actions");
  const moveTo = element("input", "move-to");
  moveTo.type = "text";
  moveTo.placeholder = "move their files into this folder (optional)";
  moveTo.setAttribute("aria-label", `Group ${number + 1}: folder to move the others' files into`);
  const button = element("button", "resolve", "Keep the ticked one, remove the others");
  button.type = "button";
  button.addEventListener("click", () => {
    const keep = Number(item.querySelector(`input[name="keep-${number}"]:checked`).value);
    const remove = group.images.map((image) => image.id).filter((id) => id !== keep);
    resolve(item, keep, remove, moveTo.value.trim());
  });
  actions.append(moveTo, button);
  item.append(images, actions);
  return item;
}

const SHOWN_FIGURES = ["found", "indexed", "skipped", "reused", "removed", "failed"];

export function runItem(run) {
  const item = element("li", `run ${run.state.toLowerCase()}`);
  const name = run.ui_url ? element("a", "name", run.name) : element("span", "name", run.name);
  if (run.ui_url) {
    name.href = run.ui_url;
    name.target = "_blank";
    name.rel = "noopener";
  }
  const when = run.start_time ? new Date(run.start_time).toLocaleString() : "not started";
  const figures = SHOWN_FIGURES.filter((key) => key in run.figures).map((key) => `${run.figures[key]} ${key}`);
  item.append(name, element("span", "state", run.state_name), element("div", "when", when),
              element("div", "figures", figures.join(" · ")));
  return item;
}
