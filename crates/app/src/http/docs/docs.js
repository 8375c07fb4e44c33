/* The API reference page: reads /openapi.json from this server and renders every operation,
   with a form to try it. It loads nothing from anywhere else (the page's Content-Security-Policy
   forbids it anyway). */
"use strict";

let doc = null;

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function resolve(obj) {
  let seen = 0;
  while (obj && obj.$ref && seen++ < 20) {
    obj = obj.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o ? o[k] : undefined), doc);
  }
  return obj || {};
}

function refName(obj) {
  return obj && obj.$ref ? obj.$ref.split("/").pop() : null;
}

/* A schema as indented text: names of referenced schemas are kept, each expanded once. */
function schemaText(schema, depth, seen) {
  depth = depth || 0; seen = seen || new Set();
  const pad = "  ".repeat(depth);
  const name = refName(schema);
  if (name) {
    if (seen.has(name) || depth > 6) return name;
    seen = new Set(seen); seen.add(name);
    return name + " " + schemaText(resolve(schema), depth, seen);
  }
  if (!schema) return "any";
  for (const key of ["oneOf", "anyOf", "allOf"]) {
    if (schema[key]) return key + " [\n" + schema[key].map(s => pad + "  " + schemaText(s, depth + 1, seen)).join(",\n") + "\n" + pad + "]";
  }
  let t = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "");
  if (schema.enum) t += " enum(" + schema.enum.map(v => JSON.stringify(v)).join(", ") + ")";
  if (schema.format) t += " (" + schema.format + ")";
  if (schema.type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
    return t + " of " + schemaText(schema.items, depth, seen);
  }
  if (schema.properties) {
    const req = new Set(schema.required || []);
    const lines = Object.entries(schema.properties).map(([k, v]) => {
      const d = v.description ? "  /* " + v.description.replace(/\n/g, " ") + " */" : "";
      return pad + "  " + k + (req.has(k) ? "" : "?") + ": " + schemaText(v, depth + 1, seen) + d;
    });
    return (t === "object" ? "" : t + " ") + "{\n" + lines.join("\n") + "\n" + pad + "}";
  }
  return t || "any";
}

/* An example body from a schema: the first thing a tryer edits. */
function example(schema, depth) {
  depth = depth || 0;
  schema = resolve(schema);
  if (schema.example !== undefined) return schema.example;
  if (depth > 5) return null;
  if (schema.oneOf || schema.anyOf) return example((schema.oneOf || schema.anyOf)[0], depth + 1);
  if (schema.allOf) return Object.assign({}, ...schema.allOf.map(s => example(s, depth + 1)));
  if (schema.enum) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find(t => t !== "null") : schema.type;
  if (type === "object" || schema.properties) {
    const out = {};
    for (const k of schema.required || []) out[k] = example(schema.properties[k], depth + 1);
    return out;
  }
  return { string: "", integer: 0, number: 0, boolean: false, array: [] }[type] ?? null;
}

function operationId(path, method) {
  return (method + path).replace(/[^A-Za-z0-9]+/g, "-");
}

function isPublic(op) {
  const sec = op.security !== undefined ? op.security : (doc.security || []);
  return sec.length === 0 || sec.some(r => Object.keys(r).length === 0);
}

function paramsTable(params) {
  if (!params.length) return null;
  return el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")),
    ...params.map(p => el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))), el("td", {}, p.in),
      el("td", {}, el("code", {}, schemaText(p.schema))), el("td", {}, p.description || ""))));
}

function responsesBlock(responses) {
  const rows = Object.entries(responses || {}).map(([status, r0]) => {
    const r = resolve(r0);
    const content = Object.entries(r.content || {}).map(([type, c]) =>
      el("details", {}, el("summary", {}, el("code", {}, type)), el("div", { class: "schema" }, schemaText(c.schema))));
    const headers = Object.keys(r.headers || {});
    return el("tr", {}, el("td", { class: "status" + status[0] }, el("b", {}, status)),
      el("td", {}, r.description || "", headers.length ? el("div", {}, "headers: ", el("code", {}, headers.join(", "))) : null, ...content));
  });
  return el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "response")), ...rows);
}

function tryForm(path, method, op, params) {
  const inputs = params.map(p => {
    const input = el("input", { "data-name": p.name, "data-in": p.in, placeholder: p.required ? "required" : "optional" });
    return el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in), el("td", {}, input));
  });
  const media = op.requestBody ? Object.keys(resolve(op.requestBody).content || {})[0] : null;
  const body = media ? el("textarea", {}, JSON.stringify(example(resolve(op.requestBody).content[media].schema), null, 2)) : null;
  const out = el("pre", {}, "");
  let aborter = null;
  const send = async () => {
    if (aborter) aborter.abort();
    aborter = new AbortController();
    let url = path;
    const query = new URLSearchParams();
    const headers = {};
    for (const i of inputs.map(r => r.querySelector("input"))) {
      const v = i.value;
      if (v === "") continue;
      const name = i.getAttribute("data-name"), where = i.getAttribute("data-in");
      if (where === "path") url = url.replace("{" + name + "}", encodeURIComponent(v));
      else if (where === "query") query.append(name, v);
      else if (where === "header") headers[name] = v;
    }
    const token = document.getElementById("token").value.trim();
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method: method.toUpperCase(), headers, signal: aborter.signal };
    if (body) { init.body = body.value; headers["Content-Type"] = media; }
    if (query.toString()) url += "?" + query;
    out.textContent = init.method + " " + url + "\n…";
    try {
      const r = await fetch(url, init);
      let head = r.status + " " + r.statusText + "\n";
      r.headers.forEach((v, k) => { head += k + ": " + v + "\n"; });
      const type = r.headers.get("content-type") || "";
      if (type.startsWith("image/")) { out.textContent = head + "\n(" + (await r.blob()).size + " bytes of image)"; return; }
      out.textContent = head + "\n";
      const reader = r.body.getReader();
      const text = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        out.textContent += text.decode(value, { stream: true });
      }
      if (type.includes("json")) {
        try { out.textContent = head + "\n" + JSON.stringify(JSON.parse(out.textContent.slice(head.length + 1)), null, 2); } catch (_) { /* shown as it came */ }
      }
    } catch (e) {
      out.textContent += "\n" + (e.name === "AbortError" ? "(stopped)" : String(e));
    }
  };
  const stop = () => { if (aborter) aborter.abort(); };
  return el("details", { class: "try" }, el("summary", {}, "Try it"),
    inputs.length ? el("table", {}, ...inputs) : null, body,
    el("p", {}, el("button", { onclick: send }, "Send"), " ", el("button", { onclick: stop }, "Stop")), out);
}

function render() {
  document.getElementById("version").textContent = "version " + doc.info.version;
  document.title = doc.info.title;
  const ops = document.getElementById("ops");
  const toc = document.getElementById("toc");
  ops.replaceChildren();
  toc.replaceChildren();
  if (doc.info.description) ops.append(el("p", {}, doc.info.description));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of ["get", "post", "put", "patch", "delete"]) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push([path, method, op, (item.parameters || []).concat(op.parameters || []).map(resolve)]);
    }
  }
  for (const [tag, list] of byTag) {
    toc.append(el("h3", {}, tag));
    ops.append(el("h2", {}, tag));
    for (const [path, method, op, params] of list) {
      const id = operationId(path, method);
      toc.append(el("a", { href: "#" + id }, el("span", { class: "method " + method }, method.toUpperCase()), path));
      const reqBody = op.requestBody ? resolve(op.requestBody) : null;
      ops.append(el("section", { class: "op", id },
        el("h2", {}, el("span", { class: "method " + method }, method.toUpperCase()), path,
          el("span", { class: "lock" }, isPublic(op) ? "public" : "bearer token")),
        op.summary ? el("p", {}, el("b", {}, op.summary)) : null,
        op.description ? el("p", {}, op.description) : null,
        paramsTable(params),
        reqBody ? el("details", { open: "" }, el("summary", {}, "request body" + (reqBody.required ? "" : " (optional)")),
          ...Object.entries(reqBody.content || {}).map(([t, c]) => el("div", {}, el("code", {}, t), el("div", { class: "schema" }, schemaText(c.schema))))) : null,
        responsesBlock(op.responses),
        tryForm(path, method, op, params)));
    }
  }
}

async function main() {
  const token = document.getElementById("token");
  token.value = sessionStorage.getItem("atelier-token") || "";
  token.addEventListener("change", () => sessionStorage.setItem("atelier-token", token.value));
  try {
    const r = await fetch("/openapi.json");
    doc = await r.json();
    render();
  } catch (e) {
    document.getElementById("ops").textContent = "The API document could not be read: " + e;
  }
}

main();
