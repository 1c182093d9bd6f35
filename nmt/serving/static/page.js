// The page of `nmt serve`: translates the text box as you type (debounced) or on Enter, shows
// each sentence's n-best with scores, and the attention heatmap of the chosen sentence.
"use strict";

const DEBOUNCE_MS = 300;
const $ = (id) => document.getElementById(id);
let timer = null;
let sent = 0;        // requests sent; answers to older ones than the last shown are dropped
let shown = 0;
let chosen = 0;      // the sentence whose attention is drawn
let answer = null;   // the last translations shown
let settings = {page_nbest: 1, max_lines: 64};

function element(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  return node;
}

async function waitForModel() {
  try {
    const reply = await fetch("/health");
    const health = await reply.json();
    if (reply.ok) {
      settings = health.decode;
      $("model").textContent = `Model: ${health.models.join(" + ")} (beam ${settings.beam_size})`;
      if ($("source").value.trim()) schedule(0);
      return;
    }
    $("model").textContent = `The server is ${health.status}…`;
  } catch (error) {
    $("model").textContent = "The server cannot be reached; retrying…";
  }
  setTimeout(waitForModel, 1000);
}

function schedule(delay) {
  clearTimeout(timer);
  timer = setTimeout(translate, delay);
}

async function translate() {
  const lines = $("source").value.split("\n");
  while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
  const id = ++sent;  // an empty box too: a request still in flight must not fill it again
  if (!lines.length) {
    shown = id;
    answer = null;
    render([]);
    $("status").textContent = "";
    return;
  }
  const cut = lines.length > settings.max_lines;
  const note = cut ? `Only the first ${settings.max_lines} lines are translated.` : "";
  if (cut) {
    $("status").textContent = note;
    lines.length = settings.max_lines;
  }
  const headers = {"Content-Type": "application/json"};
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  let reply, body;
  try {
    reply = await fetch("/translate", {method: "POST", headers, body: JSON.stringify(
      {text: lines, nbest: settings.page_nbest, scores: true, attention: true})});
    body = await reply.json();
  } catch (error) {
    if (id > shown) $("status").textContent = "The server cannot be reached.";
    return;
  }
  if (id < shown) return;
  shown = id;
  if (reply.status === 401) {
    $("token-box").hidden = false;
    $("status").textContent = "This server needs an access token: enter it above.";
    return;
  }
  if (!reply.ok) {
    $("status").textContent = `Not translated: ${body.error}`;
    return;
  }
  $("status").textContent = note;
  answer = body.translations;
  chosen = Math.min(chosen, answer.length - 1);
  render(answer);
}

function render(translations) {
  const list = $("results");
  list.replaceChildren();
  translations.forEach((found, index) => {
    const item = element("li");
    const best = element("span", found.text, {class: "text"});
    const pick = element("button", "attention", {type: "button",
      "aria-pressed": String(index === chosen), "aria-label": `Show the attention of sentence ${index + 1}`});
    pick.addEventListener("click", () => { chosen = index; render(answer); });
    item.append(best, pick);
    const table = element("table", undefined, {class: "nbest"});
    const caption = element("caption", `Best translations of sentence ${index + 1} with their scores`,
                            {class: "visually-hidden"});
    table.append(caption);
    for (const [rank, entry] of (found.nbest || [found]).entries()) {
      const row = element("tr");
      row.append(element("th", `${rank + 1}.`, {scope: "row"}),
                 element("td", entry.score === null ? "–" : entry.score.toFixed(4), {class: "score"}),
                 element("td", entry.text));
      table.append(row);
    }
    item.append(table);
    list.append(item);
  });
  drawAttention(translations[chosen], chosen);
}

function drawAttention(found, index) {
  const box = $("heatmap");
  box.replaceChildren();
  if (!found) {
    $("attention-caption").textContent = "Nothing translated yet.";
    return;
  }
  if (!found.attention) {
    $("attention-caption").textContent =
      `Sentence ${index + 1} has no attention to show (blank, or cut into pieces).`;
    return;
  }
  const {source, target, weights} = found.attention;
  $("attention-caption").textContent =
    `Sentence ${index + 1}: rows are output words, columns source words; darker is more attention.`;
  const table = element("table", undefined, {class: "heatmap"});
  table.append(element("caption", `Attention weights of sentence ${index + 1}`,
                       {class: "visually-hidden"}));
  const head = element("tr");
  head.append(element("td"));
  for (const word of source) head.append(element("th", word, {scope: "col"}));
  const thead = element("thead");
  thead.append(head);
  const tbody = element("tbody");
  weights.forEach((row, t) => {
    const line = element("tr");
    line.append(element("th", target[t], {scope: "row"}));
    row.forEach((weight, s) => {
      const cell = element("td", undefined, {title: `${target[t]} → ${source[s]}: ${weight.toFixed(2)}`});
      cell.style.background = `rgba(42, 98, 201, ${weight})`;
      cell.append(element("span", weight.toFixed(2), {class: "visually-hidden"}));
      line.append(cell);
    });
    tbody.append(line);
  });
  table.append(thead, tbody);
  box.append(table);
}

$("source").addEventListener("input", () => schedule(DEBOUNCE_MS));
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    schedule(0);
  }
});
$("token").addEventListener("change", () => schedule(0));
waitForModel();
