// The dermkit page: pick or drop photos, add history, POST /v1/predict, draw the answer.
// Plain DOM code, no build step. Server text is only ever set through textContent.
"use strict";

const MAX_IMAGES = 6;
const form = document.getElementById("case-form");
const input = document.getElementById("images");
const drop = document.getElementById("drop");
const statusLine = document.getElementById("status");
const submit = document.getElementById("submit");
let chosen = [];

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

function setFiles(files) {
  chosen = Array.from(files).filter((f) => f.type.startsWith("image/") || f.type === "");
  const list = document.getElementById("previews");
  list.replaceChildren(...chosen.map((file) => {
    const img = el("img", { alt: file.name, src: URL.createObjectURL(file) });
    return el("li", {}, [img]);
  }));
  showError("images", chosen.length > MAX_IMAGES ? `At most ${MAX_IMAGES} photos.` : "");
}

input.addEventListener("change", () => setFiles(input.files));
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove("over"); });
}
drop.addEventListener("drop", (e) => setFiles(e.dataTransfer.files));

function clearErrors() {
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
}

function showError(field, message) {
  const base = (field || "").replace(/\[\d+\]$/, "");
  const control = base === "images" ? input : form.elements[base];
  const box = document.getElementById(`${base}-error`)
    || form.querySelector(`.field-error[data-for~="${base}"]`)
    || statusLine;
  box.textContent = message;
  if (control && control.setAttribute) {
    if (message) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
  }
}

async function loadVocabulary() {
  const response = await fetch("/v1/vocabulary");
  if (!response.ok) return;
  const vocabulary = await response.json();
  document.getElementById("sites").replaceChildren(
    ...vocabulary.body_sites.map((site) => el("option", { value: site.name })));
  document.getElementById("symptoms").replaceChildren(...vocabulary.symptoms.map((symptom) => {
    const box = el("input", { type: "checkbox", name: "symptoms", value: symptom.id });
    return el("label", {}, [box, " " + symptom.name]);
  }));
}

function bars(listId, rows, label, value, detail = () => "") {
  document.getElementById(listId).replaceChildren(...rows.map((row) => {
    const percent = Math.round(value(row) * 100);
    const fill = el("span");
    fill.style.width = `${percent}%`;
    const bar = el("div", { className: "bar" }, [fill]);
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", `${label(row)}: ${percent}%`);
    const text = el("div", { className: "bar-label" }, [el("span", { textContent: label(row) }),
      el("span", { textContent: `${percent}%` })]);
    const more = detail(row);
    return el("li", {}, more ? [text, el("div", { className: "path meta", textContent: more }), bar] : [text, bar]);
  }));
}

function similarGrid(cases) {
  document.getElementById("similar-empty").hidden = cases.length > 0;
  document.getElementById("similar").replaceChildren(...cases.map((c) => {
    const figure = el("figure");
    if (c.thumbnail_url) figure.append(el("img", { src: c.thumbnail_url, alt: `similar case ${c.case_id}` }));
    figure.append(el("figcaption", { textContent: `${c.diagnosis || "no diagnosis"} · ${c.score.toFixed(2)}` }));
    return el("li", {}, [figure]);
  }));
}

function render(result) {
  document.getElementById("result-disclaimer").textContent = result.disclaimer;
  bars("differential", result.differential, (r) => r.condition, (r) => r.probability,
    (r) => (r.path || []).map((node) => node.name).join(" › "));
  const ignored = document.getElementById("ignored");
  ignored.hidden = !(result.ignored && result.ignored.length);
  ignored.textContent = ignored.hidden ? "" : `Not used by this model: ${result.ignored.join(", ")}`;
  bars("concepts", result.concepts, (r) => r.concept, (r) => r.score);
  similarGrid(result.similar_cases);
  const model = result.differential_model;
  document.getElementById("model-meta").textContent =
    `${result.differential_source} · ${model.id} (${model.version})`;
  const section = document.getElementById("results");
  section.hidden = false;
  section.querySelector("h2").setAttribute("tabindex", "-1");
  section.querySelector("h2").focus();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors();
  if (chosen.length === 0) { showError("images", "Choose at least one photo."); input.focus(); return; }
  if (chosen.length > MAX_IMAGES) { showError("images", `At most ${MAX_IMAGES} photos.`); input.focus(); return; }
  const data = new FormData();
  for (const file of chosen) data.append("images", file, file.name);
  for (const name of ["age", "sex", "fitzpatrick", "site", "duration", "acquisition"]) {
    const value = form.elements[name].value.trim();
    if (value) data.append(name, value);
  }
  for (const box of form.querySelectorAll('input[name="symptoms"]:checked')) data.append("symptoms", box.value);
  for (const select of form.querySelectorAll("select[data-flag]")) {
    if (select.value) data.append("history", `${select.dataset.flag}=${select.value}`);
  }
  for (const number of form.querySelectorAll("input[data-measurement]")) {
    if (number.value.trim()) data.append("measurements", `${number.dataset.measurement}=${number.value.trim()}`);
  }
  submit.disabled = true;
  statusLine.textContent = "Analysing…";
  try {
    const response = await fetch("/v1/predict", { method: "POST", body: data });
    const body = await response.json();
    if (!response.ok) {
      const error = body.error || { message: `server answered ${response.status}` };
      const hint = error.suggestions && error.suggestions.length ? ` Try: ${error.suggestions.join(", ")}.` : "";
      showError(error.field || "", error.message + hint);
      statusLine.textContent = "Please correct the highlighted field.";
      return;
    }
    statusLine.textContent = "";
    render(body);
  } catch (error) {
    statusLine.textContent = `Request failed: ${error}`;
  } finally {
    submit.disabled = false;
  }
});

// The served model's history fields: shown once it is loaded (/v1/models answers 503 until then).
async function loadFields() {
  const response = await fetch("/v1/models");
  if (response.status === 503) { setTimeout(loadFields, 1000); return; }
  if (!response.ok) return;
  const fields = (await response.json()).history_fields;
  for (const node of form.querySelectorAll("[data-field]")) node.hidden = !fields.fields.includes(node.dataset.field);
  document.getElementById("flags").replaceChildren(...fields.flags.map((flag) => {
    const select = el("select", { name: `history:${flag.id}` }, [el("option", { value: "", textContent: "unknown" }),
      el("option", { value: "yes", textContent: "yes" }), el("option", { value: "no", textContent: "no" })]);
    select.dataset.flag = flag.id;
    return el("label", {}, [`${flag.name} `, select]);
  }));
  document.getElementById("measurements").replaceChildren(...fields.measurements.map((name) => {
    const number = el("input", { type: "number", step: "any", name: `measurement:${name}` });
    number.dataset.measurement = name;
    return el("label", {}, [`${name} `, number]);
  }));
  if (fields.age_range) form.elements.age.max = String(fields.age_range[1]);
  form.dataset.fields = fields.fields.join(" ");
}

loadVocabulary();
loadFields();
