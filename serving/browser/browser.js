// The model browser's script: lists the served models with their cards, and streams text from those with a
// `generate` signature. Cards and figures come from the browser's read-only routes (/browser/api/...); the
// versions, signatures and generated text come from TF Serving's REST API, exactly as any client reads them,
// so the sampling box works against real TF Serving too. The recurrent state travels in the requests: the
// server keeps nothing per page (serving/streaming.py is the same loop in Python).
"use strict";

const API = "/browser/api/models";

// ------------------------------------------------------------------------------------------- small helpers

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null) node.append(child);
  }
  return node;
}

function formatNumber(value) {
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  const magnitude = Math.abs(value);
  const scientific = magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6);
  return scientific ? value.toExponential(3) : String(+value.toPrecision(4));
}

function modelPath(model, version) {
  const path = "/v1/models/" + encodeURIComponent(model);
  return version === undefined ? path : `${path}/versions/${version}`;
}

async function getJson(url, options) {
  const reply = await fetch(url, options);
  const text = await reply.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new Error(`${reply.status} from ${url}: ${text.slice(0, 200)}`);
  }
  if (!reply.ok) throw new Error(body.error || `${reply.status} from ${url}`);
  return body;
}

// A string output arrives as JSON text, or as {"b64": ...} when its bytes are not UTF-8 (TF Serving's rule).
function asText(value) {
  if (typeof value === "string") return value;
  const bytes = Uint8Array.from(atob(value.b64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

// ------------------------------------------------------------------------ TF Serving's REST API: streaming

async function pinVersion(model) {
  const status = await getJson(modelPath(model));
  const available = (status.model_version_status || [])
    .filter((entry) => entry.state === "AVAILABLE")
    .map((entry) => Number(entry.version));
  if (available.length === 0) throw new Error(`Model ${model} has no AVAILABLE version to stream from.`);
  return Math.max(...available);
}

function signaturesOf(metadata) {
  return ((metadata.metadata || {}).signature_def || {}).signature_def || {};
}

// A `generate` signature the page can stream from: the zoo's character models' inputs (README, Export).
const STREAM_INPUTS = ["prompt", "state", "steps", "temperature", "top_k", "seed", "position"];

function canStream(signatures) {
  const generate = signatures.generate;
  return Boolean(generate) && STREAM_INPUTS.every((name) => name in (generate.inputs || {}));
}

// Base64 of `count` zero bytes (the zero state as `generate_bytes` takes it): "AAAA" per 3 bytes, then the tail.
function zeroBytesBase64(count) {
  return "A".repeat(4 * Math.floor(count / 3)) + ["", "AA==", "AAA="][count % 3];
}

// The signature to stream from and its zero state: `generate_bytes` where the version serves it (the state as
// base64 bytes, which the page passes back untouched: no JSON numbers to write or read), else `generate`.
async function streamSignature(model, version) {
  const signatures = signaturesOf(await getJson(modelPath(model, version) + "/metadata"));
  if (!canStream(signatures)) {
    throw new Error(`Model ${model} version ${version} has no generate signature to stream from.`);
  }
  const dims = signatures.generate.inputs.state.tensor_shape.dim;
  const width = Number(dims[dims.length - 1].size); // int64 fields come as strings in proto JSON
  if ("state_bytes" in ((signatures.generate_bytes || {}).inputs || {})) {
    return { name: "generate_bytes", stateInput: "state_bytes", state: { b64: zeroBytesBase64(4 * width) } };
  }
  return { name: "generate", stateInput: "state", state: new Array(width).fill(0) };
}

// Yields the text of each `generate` call: the version pinned, the state and the token position carried from
// call to call, so the pieces join into the text of one long call with the same seed (as Client.stream).
async function* streamText(model, settings, signal) {
  const { prompt, tokens, temperature, topK, seed, chunkSize } = settings;
  const version = await pinVersion(model);
  const signature = await streamSignature(model, version);
  let state = signature.state;
  let next = prompt;
  for (let position = 0; position < tokens; ) {
    const steps = Math.min(chunkSize, tokens - position);
    const body = {
      signature_name: signature.name,
      inputs: {
        prompt: [next], [signature.stateInput]: [state], steps: [steps], temperature: [temperature],
        top_k: [topK], seed: [seed], position: [position],
      },
    };
    const reply = await getJson(modelPath(model, version) + ":predict", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), signal,
    });
    const text = asText(reply.outputs.text[0]);
    state = reply.outputs[signature.stateInput][0];
    next = Array.from(text).slice(-1).join(""); // the last character is not in the state yet: fed first next time
    position += steps;
    yield { text, version };
  }
}

// --------------------------------------------------------------------------------------------- the page

function verdictOf(card) {
  if (card.passed === true) return { key: "met", label: "meets its bar" };
  if (card.passed === false) return { key: "missed", label: "misses its bar" };
  if (card.bar) return { key: "reported", label: "reported" };
  return { key: "none", label: "no card" };
}

function metricsTable(card) {
  const metrics = card.metrics || {};
  const rows = Object.keys(metrics).sort().map((name) => el("tr", {}, el("th", { scope: "row" }, name),
    el("td", {}, formatNumber(metrics[name]))));
  const verdict = verdictOf(card);
  return el("section", { class: "metrics" },
    el("h3", {}, "Measured against the bar"),
    el("p", { class: "bar" }, el("span", { class: `verdict ${verdict.key}` }, verdict.label),
      card.bar ? el("span", {}, " bar: ", el("strong", {}, card.bar)) : " no bar recorded"),
    card.anchor ? el("p", { class: "anchor" }, "Published anchor: ", card.anchor) : null,
    rows.length ? el("table", {}, el("tbody", {}, rows)) : el("p", {}, "No measured metrics."),
    card.notes ? el("p", { class: "notes" }, card.notes) : null);
}

function recipeSection(card) {
  const recipe = card.recipe;
  if (!recipe) return null;
  const config = recipe.config || {};
  const rows = Object.keys(config).sort().map((key) => el("tr", {}, el("th", { scope: "row" }, key),
    el("td", {}, el("code", {}, JSON.stringify(config[key])))));
  return el("section", { class: "recipe" },
    el("h3", {}, "Recipe"),
    recipe.command ? el("pre", {}, el("code", {}, recipe.command)) : null,
    rows.length ? el("details", {}, el("summary", {}, `configuration (${rows.length} settings)`),
      el("table", {}, el("tbody", {}, rows))) : null);
}

function factsList(card) {
  const facts = [
    ["data", card.data], ["parameters", card.parameters], ["seed", card.seed], ["trained", card.trained_at],
    ["machine", card.machine && [card.machine.processor, `${card.machine.cpu_count} CPUs`,
      (card.machine.gpus || []).length ? card.machine.gpus.join(", ") : null,
      card.machine.tensorflow && `TensorFlow ${card.machine.tensorflow}`].filter(Boolean).join(", ")],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  return el("dl", { class: "facts" },
    facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, formatNumber(value))]));
}

function figuresSection(entry) {
  const titles = Object.keys(entry.figures);
  const missing = entry.card.figures_missing;
  if (!titles.length && !missing) return null;
  return el("section", { class: "figures" },
    el("h3", {}, "Figures"),
    titles.map((title) => el("figure", {},
      el("a", { href: entry.figures[title], target: "_blank" },
        el("img", { src: entry.figures[title], alt: `${entry.name}: ${title}`, loading: "eager" })),
      el("figcaption", {}, title.replaceAll("_", " ")))),
    missing ? el("p", { class: "notes" }, "Not drawn: ", JSON.stringify(missing)) : null);
}

function numberField(label, name, value, attributes) {
  return el("label", {}, label, el("input", { type: "number", name, value, required: "", ...attributes }));
}

function generationBox(name) {
  const form = el("form", { class: "generate", "data-state": "idle" },
    el("h3", {}, "Sample live from the server"),
    el("label", { class: "prompt" }, "prompt", el("textarea", { name: "prompt", rows: 2 }, "ROMEO.")),
    el("div", { class: "settings" },
      numberField("characters", "tokens", 400, { min: 1, max: 4096, step: 1 }),
      numberField("temperature", "temperature", 0.8, { min: 0, max: 5, step: "any" }),
      numberField("top-k", "top_k", 0, { min: 0, step: 1 }),
      numberField("seed", "seed", 1, { min: 0, max: Number.MAX_SAFE_INTEGER, step: 1 }),
      numberField("per call", "chunk_size", 16, { min: 1, max: 4096, step: 1 })),
    el("div", { class: "buttons" },
      el("button", { type: "submit", name: "start" }, "Stream"),
      el("button", { type: "button", name: "stop", disabled: "" }, "Stop")),
    el("pre", { class: "output", "data-pieces": "0" }, el("span", { class: "prompt-text" }),
      el("span", { class: "generated" })),
    el("p", { class: "stream-status", role: "status" }));
  let controller = null;
  form.elements.stop.addEventListener("click", () => controller && controller.abort());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const settings = {
      prompt: form.elements.prompt.value, tokens: Number(form.elements.tokens.value),
      temperature: Number(form.elements.temperature.value), topK: Number(form.elements.top_k.value),
      seed: Number(form.elements.seed.value), chunkSize: Number(form.elements.chunk_size.value),
    };
    const output = form.querySelector(".output");
    const generated = output.querySelector(".generated");
    const status = form.querySelector(".stream-status");
    output.querySelector(".prompt-text").textContent = settings.prompt;
    generated.textContent = "";
    output.dataset.pieces = "0";
    controller = new AbortController();
    form.elements.start.disabled = true;
    form.elements.stop.disabled = false;
    form.dataset.state = "streaming";
    const started = performance.now();
    let count = 0;
    try {
      for await (const piece of streamText(name, settings, controller.signal)) {
        generated.append(piece.text); // one text node per call: the text grows as each reply arrives
        output.dataset.pieces = String(Number(output.dataset.pieces) + 1);
        count += Array.from(piece.text).length;
        const seconds = (performance.now() - started) / 1000;
        status.textContent = `${count} characters from version ${piece.version} in ${seconds.toFixed(2)} s`;
      }
      form.dataset.state = "done";
    } catch (error) {
      form.dataset.state = error.name === "AbortError" ? "stopped" : "error";
      status.textContent = error.name === "AbortError" ? `Stopped after ${count} characters.` : String(error.message);
    } finally {
      form.elements.start.disabled = false;
      form.elements.stop.disabled = true;
      controller = null;
    }
  });
  return form;
}

// The model's versions and signatures, read through TF Serving's API; a generation box when it can stream.
async function addServingFacts(entry, section) {
  const served = section.querySelector(".served");
  try {
    const status = await getJson(modelPath(entry.name));
    const versions = (status.model_version_status || []).map((v) => `${v.version} ${v.state}`).join(", ");
    const signatures = signaturesOf(await getJson(modelPath(entry.name) + "/metadata"));
    const names = Object.keys(signatures).filter((name) => !name.startsWith("__")).sort(); // not the init op
    served.textContent = `versions: ${versions} · signatures: ${names.join(", ")}`;
    if (canStream(signatures)) {
      section.classList.add("generates");
      section.querySelector(".model-body").prepend(generationBox(entry.name));
    }
  } catch (error) {
    served.textContent = `not available: ${error.message}`;
  }
}

function renderModel(entry) {
  const card = entry.card || {};
  const verdict = verdictOf(card);
  const section = el("section", { class: "model", id: `model-${entry.name}`, "data-model": entry.name },
    el("h2", {}, entry.name, el("span", { class: `verdict ${verdict.key}` }, verdict.label)),
    el("p", { class: "served" }, "reading its versions…"),
    el("div", { class: "model-body" },
      Object.keys(card).length ? [factsList(card), metricsTable(card), figuresSection(entry), recipeSection(card)]
        : el("p", {}, "This model has no card (no card.json beside its versions).")));
  return section;
}

async function main() {
  const summary = document.getElementById("summary");
  const list = document.getElementById("model-list");
  const cards = document.getElementById("cards");
  let models;
  try {
    models = (await getJson(API)).models;
  } catch (error) {
    summary.textContent = `Could not read the model list: ${error.message}`;
    return;
  }
  summary.textContent = `${models.length} model${models.length === 1 ? "" : "s"} served by ${location.host}`;
  for (const entry of models) {
    const verdict = verdictOf(entry.card || {});
    list.append(el("li", { "data-model": entry.name },
      el("a", { href: `#model-${entry.name}` }, entry.name),
      el("span", { class: `dot ${verdict.key}`, title: verdict.label })));
    const section = renderModel(entry);
    cards.append(section);
    addServingFacts(entry, section);
  }
  document.body.dataset.ready = "true";
}

main();
