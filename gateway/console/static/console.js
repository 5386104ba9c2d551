// privgate console: a small module, no framework, no build step. Data comes only from /admin/api/...;
// every value is put in the page as text (textContent), never as HTML, except the server's own SVG charts.

const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/console"); // the session ended: back to the login form
    throw new Error("not logged in");
  }
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `HTTP ${response.status}`;
    throw new Error(message);
  }
  return data;
}

function fillSelect(select, values, keepFirst = true) {
  const first = keepFirst && select.options.length ? select.options[0] : null;
  select.replaceChildren(...(first ? [first] : []), ...values.map((v) => el("option", { value: v, text: v })));
}

const fmtTime = (iso) => iso.replace("T", " ").slice(0, 19);
const fmtShort = (iso) => iso.slice(5, 19).replace("T", " ");
const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : `${Number(ms).toFixed(1)} ms`);

// ------------------------------------------------------------------ tabs
const loaded = new Set();
function showTab(name) {
  const tabs = ["playground", "requests", "charts", "policies"];
  if (!tabs.includes(name)) name = "playground";
  for (const tab of tabs) $(`#${tab}`).hidden = tab !== name;
  for (const link of document.querySelectorAll("#tabs a")) link.classList.toggle("active", link.dataset.tab === name);
  if (name === "requests") loadRequests();
  if (name === "charts") loadCharts();
  if (name === "policies" && !loaded.has("policies")) loadPolicies().then(() => loaded.add("policies"));
  document.body.dataset.tab = name;
  refreshTotals();
}

async function refreshTotals() {
  const t = (await api("/admin/api/overview")).totals;
  $("#totals").textContent = `${t.requests} requests · ${t.spans} spans · ${t.leaks} leaks audited`;
}

// ------------------------------------------------------------------ playground
function highlighted(text, spans) {
  // span offsets are code points (Python): index an array of code points, not the UTF-16 string
  const chars = Array.from(text);
  const out = [];
  let at = 0;
  for (const span of [...spans].sort((a, b) => a.start - b.start)) {
    if (span.start < at) continue;
    out.push(chars.slice(at, span.start).join(""));
    const title = `${span.label} · detector: ${span.detector} · score: ${span.score} · action: ${span.action}`;
    out.push(
      el("mark", { class: `span a-${span.action}`, title, "data-tip": title, "data-label": span.label, "data-action": span.action },
        chars.slice(span.start, span.end).join(""), el("span", { class: "tag", text: span.label })),
    );
    at = span.end;
  }
  out.push(chars.slice(at).join(""));
  return out;
}

async function runPlayground(event) {
  event.preventDefault();
  const input = $("#pg-input").value;
  const asJson = $("#pg-json").checked;
  const request = { domain: $("#pg-domain").value, tenant: $("#pg-tenant").value };
  if (asJson) request.body = input;
  else request.text = input;
  const outcome = $("#pg-outcome");
  $("#pg-out").hidden = false;
  outcome.className = "banner";
  outcome.textContent = "Running…";
  let result;
  try {
    result = await api("/admin/api/playground", { json: request });
  } catch (error) {
    outcome.className = "banner bad";
    outcome.textContent = error.message;
    return;
  }
  const sent = result.outcome === "forwarded";
  outcome.className = `banner ${sent ? "ok" : "bad"}`;
  const labels = new Set(result.spans.map((s) => s.label));
  outcome.textContent = sent
    ? `Would be sent: ${result.spans.length} span(s) (${[...labels].join(", ") || "none"}) under policy ` +
      `${result.domain} ${result.policy_version}` + (result.epsilon ? `, ε ${result.epsilon} would be spent` : "")
    : `The proxy would refuse this request (${result.status} ${result.code}): ${result.message}`;
  const box = $("#pg-highlight");
  box.replaceChildren();
  for (const slot of result.slots) {
    const spans = result.spans.filter((s) => s.slot === slot.index);
    const name = result.slots.length > 1 ? el("span", { class: "slot-name", text: `text slot ${slot.index}` }) : null;
    box.append(el("div", { class: "slot", "data-slot": slot.index }, name, ...highlighted(slot.text, spans)));
  }
  $("#pg-spans tbody").replaceChildren(
    ...result.spans.map((s) =>
      el("tr", {}, el("td", {}, el("span", { class: "pill", text: s.label })), el("td", { text: s.detector }),
        el("td", { text: s.score }), el("td", { text: s.action }), el("td", { text: s.epsilon ?? "" })),
    ),
  );
  $("#pg-body").textContent = result.body ? JSON.stringify(result.body, null, 2) : "(nothing: the request is refused)";
  $("#pg-trip").hidden = !result.round_trip;
  if (result.round_trip) {
    $("#pg-cloud").textContent = result.round_trip.cloud_answer;
    $("#pg-restored").textContent = result.round_trip.restored_answer;
  }
}

// ------------------------------------------------------------------ requests
async function loadFacets() {
  const facets = await api("/admin/api/requests/facets");
  for (const [id, key] of [["#rq-tenant", "tenants"], ["#rq-domain", "domains"], ["#rq-label", "labels"], ["#rq-backend", "backends"]]) {
    const select = $(id);
    const current = select.value;
    fillSelect(select, facets[key]);
    select.value = facets[key].includes(current) ? current : "";
  }
}

async function loadRequests(event) {
  if (event) event.preventDefault();
  await loadFacets();
  const params = new URLSearchParams({ limit: "100" });
  for (const [key, id] of [["tenant", "#rq-tenant"], ["domain", "#rq-domain"], ["label", "#rq-label"], ["backend", "#rq-backend"]]) {
    if ($(id).value) params.set(key, $(id).value);
  }
  if ($("#rq-leaks").checked) params.set("leaks", "true");
  const { data } = await api(`/admin/api/requests?${params}`);
  $("#rq-empty").hidden = data.length > 0;
  $("#rq-table tbody").replaceChildren(
    ...data.map((r) =>
      el("tr", { "data-request-id": r.request_id, onclick: () => showRequest(r.request_id) },
        el("td", { class: "time", text: fmtShort(r.created_at), title: fmtTime(r.created_at) }), el("td", { text: r.tenant }), el("td", { text: r.domain }),
        el("td", { text: r.endpoint }),
        el("td", {}, el("span", { class: `pill ${r.outcome === "forwarded" || r.outcome === "dry_run" ? "ok" : "bad"}`, text: r.outcome })),
        el("td", { class: "n-spans", text: r.n_spans }),
        el("td", { class: "n-leaks" }, r.n_leaks ? el("span", { class: "pill bad", text: r.n_leaks }) : "0"),
        el("td", {}, Object.entries(r.labels).map(([label, n]) => el("span", { class: "pill", text: `${label} ×${n}` }))),
        el("td", { text: fmtMs(r.overhead_ms) })),
    ),
  );
}

async function showRequest(requestId) {
  for (const row of document.querySelectorAll("#rq-table tbody tr")) {
    row.classList.toggle("selected", row.dataset.requestId === requestId);
  }
  const r = await api(`/admin/api/requests/${encodeURIComponent(requestId)}`);
  const meta = [
    ["request id", r.request_id], ["time (UTC)", fmtTime(r.created_at)], ["tenant", r.tenant], ["domain", r.domain],
    ["policy version", r.policy_version], ["endpoint", r.endpoint], ["model", r.model ?? "–"], ["backend", r.backend],
    ["streamed", r.streamed ? "yes" : "no"], ["outcome", `${r.outcome} (${r.status}${r.error ? `, ${r.error}` : ""})`],
    ["upstream status", r.upstream_status ?? "–"], ["overhead", fmtMs(r.overhead_ms)], ["upstream time", fmtMs(r.upstream_ms)],
  ];
  const detail = $("#rq-detail");
  detail.hidden = false;
  detail.replaceChildren(
    el("h3", { text: "Request detail" }),
    el("dl", { class: "meta" }, meta.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])),
    el("h4", { text: "Spans by label, detector and action" }),
    el("table", { class: "data", id: "rq-by-label" },
      el("thead", {}, el("tr", {}, ["label", "detector", "action", "count"].map((h) => el("th", { text: h })))),
      el("tbody", {}, r.by_label.map((g) => el("tr", {}, el("td", {}, el("span", { class: "pill", text: g.label })),
        el("td", { text: g.detector }), el("td", { text: g.action }), el("td", { text: g.count }))))),
    el("h4", { text: "Spans (keyed hashes, never the values)" }),
    el("table", { class: "data", id: "rq-spans" },
      el("thead", {}, el("tr", {}, ["slot", "label", "detector", "action", "score", "value hash"].map((h) => el("th", { text: h })))),
      el("tbody", {}, r.spans.map((s) => el("tr", {}, el("td", { text: s.slot }), el("td", { text: s.label }),
        el("td", { text: s.detector }), el("td", { text: s.action }), el("td", { text: s.score }),
        el("td", { class: "hash", text: s.value_hash }))))),
    el("h4", { text: "Leak-scan findings" }),
    r.leaks.length
      ? el("ul", { id: "rq-leaks-list" }, r.leaks.map((l) => el("li", {}, el("span", { class: "pill bad", text: l.label }), " ",
          el("span", { class: "hash", text: l.value_hash }))))
      : el("p", { class: "muted", text: "none: nothing protected left the machine" }),
    el("h4", { text: "PPVD hits" }),
    r.ppvd_hits && r.ppvd_hits.length
      ? el("pre", { class: "code", text: JSON.stringify(r.ppvd_hits, null, 2) })
      : el("p", { class: "muted", text: "none recorded" }),
  );
}

// ------------------------------------------------------------------ charts
async function loadCharts() {
  const hours = $("#ch-hours").value;
  await Promise.all(["requests", "spans", "leaks", "overhead", "budget"].map(async (name) => {
    const svg = await api(`/admin/api/charts/${name}.svg?hours=${hours}`, { headers: { Accept: "image/svg+xml" } });
    $(`#ch-${name}`).innerHTML = svg; // drawn by our server, every text in it XML-escaped
  }));
}

// ------------------------------------------------------------------ policies
function policyCard(p) {
  const actions = Object.entries(p.actions);
  const d = p.detectors;
  const detectors = [
    d.presidio.enabled ? `Presidio (${Object.values(d.presidio.models).join(", ")})` : null,
    d.chinese.enabled ? "Chinese names (jieba)" : null,
    d.prototypes ? `domain prototypes${d.prototypes.enabled ? "" : " (off)"}` : null,
    d.patterns.length ? `${d.patterns.length} pattern(s)` : null,
    d.deny_lists.length ? `deny-lists: ${d.deny_lists.map((x) => `${x.label} (${x.terms} terms)`).join(", ")}` : null,
  ].filter(Boolean);
  return el("div", { class: "card policy", "data-domain": p.domain },
    el("h3", {}, `${p.domain} `, el("span", { class: "pill", text: `version ${p.version}` }), " ",
      el("span", { class: `pill ${p.protect ? "ok" : "bad"}`, text: p.protect ? "fail closed" : "not protected" }), " ",
      el("span", { class: "pill", text: `backend ${p.backend}` })),
    p.description ? el("p", { class: "muted", text: p.description }) : null,
    el("dl", { class: "meta" },
      el("dt", { text: "detectors" }), el("dd", { text: detectors.join(" · ") || "none" }),
      el("dt", { text: "default action" }), el("dd", { text: p.default_action }),
      el("dt", { text: "actions" }), el("dd", {}, actions.length ? actions.map(([l, a]) => el("span", { class: "pill", text: `${l}: ${a}` })) : "–"),
      el("dt", { text: "DP" }), el("dd", { text: `ε ${p.dp.epsilon} per span, budget ${p.dp.budget} per ${p.dp.window}, then ${p.dp.on_exhausted}` }),
      el("dt", { text: "artifacts" }), el("dd", {}, p.artifacts.length
        ? p.artifacts.map((a) => el("div", {}, `${a.kind} ${a.id} `, el("span", { class: "hash", text: a.sha256 ? `sha256 ${a.sha256.slice(0, 16)}…` : "missing" })))
        : "none"),
      el("dt", { text: "policy hash" }), el("dd", { class: "hash", text: p.sha256 })));
}

async function loadPolicies() {
  const { data } = await api("/admin/api/policies");
  $("#po-list").replaceChildren(...data.map(policyCard));
}

async function checkPolicy() {
  const result = $("#po-result");
  result.hidden = false;
  try {
    const answer = await api("/admin/api/policies/validate", {
      json: { text: $("#po-text").value, filename: $("#po-filename").value || null },
    });
    result.textContent = answer.lines.join("\n");
    result.dataset.ok = answer.ok ? "yes" : "no";
  } catch (error) {
    result.textContent = error.message;
    result.dataset.ok = "no";
  }
}

// ------------------------------------------------------------------ start
async function start() {
  const overview = await api("/admin/api/overview");
  fillSelect($("#pg-domain"), overview.domains, false);
  $("#pg-domain").value = overview.default_domain;
  fillSelect($("#pg-tenant"), overview.tenants, false);
  $("#pg-tenant").value = "default";
  $("#pg-form").addEventListener("submit", runPlayground);
  $("#rq-filters").addEventListener("submit", loadRequests);
  $("#ch-hours").addEventListener("change", loadCharts);
  $("#po-check").addEventListener("click", checkPolicy);
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  showTab(location.hash.slice(1));
  document.body.dataset.ready = "yes";
}

start().catch((error) => {
  document.body.dataset.ready = "error";
  console.error(error.message);
});
