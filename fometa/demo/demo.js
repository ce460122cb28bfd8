// fometa demo: sketchpads and uploads for a few classes and a query, sent to the local server's
// JSON API (/api/preview, /api/adapt); see fometa/demo/server.py.
"use strict";

// A drawing is exported at the size of Omniglot's scans (105x105) with their stroke width (5 px, the
// median of the scanned strokes): the server thresholds it to black and white and resizes it exactly
// as the packer resized the scans, so a mouse drawing looks to the network like a scanned one.
const SKETCH_SIZE = 105;
const STROKE = 5;
const PAD_PIXELS = 420;  // the canvas's own resolution, shown at 210 CSS pixels: smooth lines on any screen

const state = { info: null, classes: [], query: null, busy: false };

// ---------------------------------------------------------------------------------------------
// requests
// ---------------------------------------------------------------------------------------------
async function api(path, payload) {
  let response;
  try {
    response = await fetch(path, payload === undefined ? {} : {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
    });
  } catch (err) {
    throw new Error(`the demo server did not answer (${err.message}); is fometa demo still running?`);
  }
  let answer;
  try {
    answer = await response.json();
  } catch (err) {
    throw new Error(`the server's answer was not JSON (HTTP ${response.status})`);
  }
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

// ---------------------------------------------------------------------------------------------
// a sketchpad: black strokes on white, drawn with the mouse, a pen or a finger
// ---------------------------------------------------------------------------------------------
class Pad {
  constructor(slot, onStroke) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "pad";
    this.canvas.width = this.canvas.height = PAD_PIXELS;
    slot.appendChild(this.canvas);
    this.ctx = this.canvas.getContext("2d");
    this.ctx.lineCap = this.ctx.lineJoin = "round";
    this.ctx.strokeStyle = this.ctx.fillStyle = "#000";
    this.ctx.lineWidth = PAD_PIXELS * STROKE / SKETCH_SIZE;
    this.empty = true;
    this.last = null;
    this.onStroke = onStroke;
    this.clear();
    this.canvas.addEventListener("pointerdown", (e) => this.down(e));
    this.canvas.addEventListener("pointermove", (e) => this.move(e));
    for (const kind of ["pointerup", "pointercancel"]) this.canvas.addEventListener(kind, (e) => this.up(e));
  }

  point(e) {
    const box = this.canvas.getBoundingClientRect();
    return [(e.clientX - box.left) * PAD_PIXELS / box.width, (e.clientY - box.top) * PAD_PIXELS / box.height];
  }

  down(e) {
    e.preventDefault();
    this.canvas.setPointerCapture(e.pointerId);
    this.last = this.point(e);
    const [x, y] = this.last;
    this.ctx.beginPath();  // a dot for a click without a move
    this.ctx.arc(x, y, this.ctx.lineWidth / 2, 0, 2 * Math.PI);
    this.ctx.fill();
    this.empty = false;
  }

  move(e) {
    if (!this.last) return;
    const [x, y] = this.point(e);
    this.ctx.beginPath();
    this.ctx.moveTo(...this.last);
    this.ctx.lineTo(x, y);
    this.ctx.stroke();
    this.last = [x, y];
  }

  up(e) {
    if (!this.last) return;
    this.move(e);
    this.last = null;
    this.onStroke();
  }

  clear() {
    this.ctx.fillStyle = "#fff";
    this.ctx.fillRect(0, 0, PAD_PIXELS, PAD_PIXELS);
    this.ctx.fillStyle = "#000";
    this.empty = true;
  }

  // the drawing as a PNG data URL at the scans' size (grey edges; the server makes it black and white)
  exportPNG() {
    const small = document.createElement("canvas");
    small.width = small.height = SKETCH_SIZE;
    const ctx = small.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(this.canvas, 0, 0, SKETCH_SIZE, SKETCH_SIZE);
    return small.toDataURL("image/png");
  }
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`cannot read '${file.name}'`));
    reader.readAsDataURL(file);
  });
}

// an upload as {image, preview}, or an error naming it (checked for size here, for content by the server)
async function uploaded(file) {
  const limit = state.info.max_image_bytes;
  if (file.size > limit) {
    throw new Error(`'${file.name}' is too large: ${(file.size / 2 ** 20).toFixed(1)} MiB; ` +
                    `at most ${(limit / 2 ** 20).toFixed(0)} MiB per image`);
  }
  const image = await readFile(file);
  try {
    return { image, preview: (await api("/api/preview", { image })).preview };
  } catch (err) {
    throw new Error(`'${file.name}': ${err.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// class cards: a name, a sketchpad, the kept drawings and uploads
// ---------------------------------------------------------------------------------------------
function classCard(index) {
  const card = document.createElement("div");
  card.className = "card";
  card.id = `class-${index}`;
  card.innerHTML = `
    <input class="name" aria-label="name of class ${index + 1}" value="${"ABCDE"[index]}">
    <div class="pad-slot"></div>
    <div class="tools">
      <button type="button" class="keep" title="keep this drawing as an example of the class and draw another">Keep</button>
      <button type="button" class="clear" title="clear the pad">Clear</button>
      <label class="upload" title="add image files as examples of the class">Upload&hellip;<input type="file" accept="image/*" multiple></label>
    </div>
    <div class="seen-row"><img class="seen" alt="the drawing as the network sees it"><span class="caption">&larr; the network sees</span></div>
    <div class="examples" aria-label="kept examples"></div>`;
  const entry = { card, examples: [], pending: null };
  const seen = card.querySelector("img.seen");
  entry.pad = new Pad(card.querySelector(".pad-slot"), async () => {
    const image = entry.pad.exportPNG();
    entry.pending = { image, preview: null };
    try {
      const { preview } = await api("/api/preview", { image });
      if (entry.pending && entry.pending.image === image) {
        entry.pending.preview = preview;
        seen.src = preview;
      }
    } catch (err) {
      showError(`${name(entry)}: ${err.message}`);
    }
  });
  card.querySelector(".keep").addEventListener("click", () => {
    keepPending(entry).catch((err) => showError(`${name(entry)}: ${err.message}`));
  });
  card.querySelector(".clear").addEventListener("click", () => {
    entry.pad.clear();
    entry.pending = null;
    seen.removeAttribute("src");
  });
  card.querySelector("input[type=file]").addEventListener("change", async (e) => {
    showError("");
    for (const file of [...e.target.files]) {
      try {
        addExample(entry, await uploaded(file));
      } catch (err) {
        showError(`${name(entry)}: ${err.message}`);
      }
    }
    e.target.value = "";
  });
  return entry;
}

function name(entry) {
  return entry.card.querySelector("input.name").value.trim() || entry.card.id;
}

async function keepPending(entry) {
  if (entry.pad.empty || !entry.pending) return;
  const example = entry.pending;
  if (!example.preview) example.preview = (await api("/api/preview", { image: example.image })).preview;
  addExample(entry, example);
  entry.pad.clear();
  entry.pending = null;
  entry.card.querySelector("img.seen").removeAttribute("src");
}

function addExample(entry, example) {
  if (entry.examples.length >= state.info.images_per_class) {
    throw new Error(`at most ${state.info.images_per_class} images per class`);
  }
  entry.examples.push(example);
  const box = document.createElement("span");
  box.className = "example";
  const img = document.createElement("img");
  img.src = example.preview;
  img.alt = "kept example, as the network sees it";
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "\u00d7";
  remove.title = "remove";
  remove.addEventListener("click", () => {
    entry.examples.splice(entry.examples.indexOf(example), 1);
    box.remove();
  });
  box.append(img, remove);
  entry.card.querySelector(".examples").appendChild(box);
}

// ---------------------------------------------------------------------------------------------
// the query
// ---------------------------------------------------------------------------------------------
function queryCard() {
  const card = document.getElementById("query");
  const seen = card.querySelector("img.seen");
  const pad = new Pad(card.querySelector(".pad-slot"), async () => {
    const image = pad.exportPNG();
    state.query = { image, preview: null };
    try {
      const { preview } = await api("/api/preview", { image });
      if (state.query && state.query.image === image) seen.src = state.query.preview = preview;
    } catch (err) {
      showError(`query: ${err.message}`);
    }
  });
  card.querySelector(".clear").addEventListener("click", () => {
    pad.clear();
    state.query = null;
    seen.removeAttribute("src");
  });
  card.querySelector("input[type=file]").addEventListener("change", async (e) => {
    showError("");
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try {
      const example = await uploaded(file);
      pad.clear();
      state.query = example;
      seen.src = example.preview;
    } catch (err) {
      showError(`query: ${err.message}`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// learning and the result
// ---------------------------------------------------------------------------------------------
async function learn() {
  if (state.busy) return;
  showError("");
  const button = document.getElementById("learn");
  state.busy = button.disabled = true;
  setStatus("adapting\u2026");
  try {
    // a class's images: those kept, and the drawing on its pad
    const classes = state.classes.map((entry) => ({
      name: name(entry),
      images: entry.examples.map((x) => x.image).concat(entry.pad.empty || !entry.pending ? [] : [entry.pending.image]),
    }));
    if (!state.query) throw new Error("draw or upload a query image");
    const answer = await api("/api/adapt", { classes, query: state.query.image });
    showResult(answer);
    setStatus("");
  } catch (err) {
    showError(err.message);
    setStatus("");
  } finally {
    state.busy = button.disabled = false;
  }
}

function barRow(label, probability, best, thumbnail) {
  const row = document.createElement("div");
  row.className = best ? "bar-row best" : "bar-row";
  row.dataset.probability = String(probability);
  const text = document.createElement("span");
  text.className = "label";
  text.textContent = label;
  const track = document.createElement("div");
  track.className = "bar-track";
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.style.width = `${(100 * probability).toFixed(1)}%`;
  track.appendChild(bar);
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = `${(100 * probability).toFixed(1)}%`;
  if (thumbnail) {
    const img = document.createElement("img");
    img.src = thumbnail;
    img.alt = "";
    row.appendChild(img);
  }
  row.append(text, track, value);
  return row;
}

function argmax(values) {
  return values.reduce((best, v, i) => (v > values[best] ? i : best), 0);
}

function showResult(answer) {
  const result = document.getElementById("result");
  result.dataset.predicted = answer.predicted;
  result.dataset.predictedIndex = String(answer.predicted_index);
  document.getElementById("predicted").textContent = answer.predicted;
  const notes = document.getElementById("notes");  // images unlike the model's training images, if any
  notes.textContent = (answer.notes || []).join(" ");
  notes.hidden = !notes.textContent;
  const bars = document.getElementById("bars");
  bars.replaceChildren(...answer.classes.map((c, i) => {
    const row = barRow(c, answer.probabilities[i], i === answer.predicted_index, answer.previews.classes[i][0]);
    row.dataset.class = c;
    return row;
  }));
  const steps = document.getElementById("steps");
  steps.replaceChildren(...answer.steps.map(({ step, probabilities }) => {
    const box = document.createElement("div");
    box.className = "step";
    box.dataset.step = String(step);
    const best = argmax(probabilities);
    const title = document.createElement("h4");
    title.textContent = `${step} step${step === 1 ? "" : "s"}: ${answer.classes[best]}`;
    box.append(title, ...answer.classes.map((c, i) => barRow(c, probabilities[i], i === best)));
    return box;
  }));
  document.getElementById("timing").textContent =
    `Fine-tuned on ${answer.previews.classes.flat().length} images and classified the query in ` +
    `${answer.seconds.toFixed(2)} s.`;
  result.hidden = false;
}

// ---------------------------------------------------------------------------------------------
async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) {
    showError(err.message);
    return;
  }
  document.getElementById("model").textContent = state.info.model;
  const classes = document.getElementById("classes");
  for (let i = 0; i < state.info.classes; i++) {
    const entry = classCard(i);
    state.classes.push(entry);
    classes.appendChild(entry.card);
  }
  queryCard();
  document.getElementById("learn").addEventListener("click", learn);
  document.body.dataset.ready = "true";
}

start();
