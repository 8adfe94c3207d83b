// The playground: sends each turn to the Responses API (streamed, through the console's
// same-origin endpoint) and shows the reply as it streams in, with tool calls and approval
// requests inline. Text from the server is only ever set as textContent.
(() => {
  "use strict";
  const root = document.getElementById("playground");
  const endpoint = root.dataset.api;
  const prefix = root.dataset.prefix;
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const chat = document.getElementById("chat");
  const message = document.getElementById("message");
  const send = document.getElementById("send");
  const target = document.getElementById("target");
  let previous = null;
  let busy = false;

  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const pretty = (raw) => {
    try { return JSON.stringify(typeof raw === "string" ? JSON.parse(raw) : raw, null, 2); }
    catch (e) { return String(raw); }
  };

  function chosen() {
    const value = target.value;
    if (value.startsWith("agent:")) {
      const [, name, version] = value.split(":");
      const ref = { type: "agent_reference", name };
      if (version) ref.version = version;
      return { agent_reference: ref };
    }
    return { model: value.slice("model:".length) };
  }

  function remember(id, label) {
    let recent = [];
    try { recent = JSON.parse(localStorage.getItem("cupola.console.recent") || "[]"); } catch (e) { recent = []; }
    if (!Array.isArray(recent)) recent = [];
    recent = [{ id, label, at: Date.now() }, ...recent.filter((r) => r && r.id !== id)].slice(0, 50);
    try { localStorage.setItem("cupola.console.recent", JSON.stringify(recent)); } catch (e) { /* private mode */ }
  }

  function reset() {
    previous = null;
    log.replaceChildren();
    status.textContent = "New chat with " + target.options[target.selectedIndex].text + ".";
  }

  function userTurn(text) {
    const turn = el("div", "turn user");
    const item = el("article", "item item-message");
    item.append(el("h3", "role", "user"), el("div", "text", text));
    turn.append(item);
    log.append(turn);
  }

  // One assistant turn: a container that fills in as events arrive.
  function assistantTurn() {
    const turn = el("div", "turn assistant");
    log.append(turn);
    const items = new Map();
    const pending = new Map(); // output index -> a call waiting for its output or approval
    return {
      item(index, data) {
        let node = items.get(index);
        if (!node) {
          node = el("article", "item item-" + data.type);
          node.dataset.type = data.type;
          turn.append(node);
          items.set(index, node);
        }
        return node;
      },
      added(index, data) {
        const node = this.item(index, data);
        if (data.type === "message") {
          node.replaceChildren(el("h3", "role", data.role || "assistant"), el("div", "text", ""));
        } else {
          this.done(index, data);
        }
      },
      delta(index, text) {
        const node = items.get(index);
        const box = node && node.querySelector(".text");
        if (box) box.textContent += text;
      },
      done(index, data) {
        const node = this.item(index, data);
        if (data.type === "message") {
          const text = (data.content || []).map((p) => p.text || p.refusal || "").join("");
          node.replaceChildren(el("h3", "role", data.role || "assistant"), el("div", "text", text));
          return;
        }
        node.replaceChildren(...describe(data));
        if (data.type === "function_call" && data.status !== "in_progress") pending.set(index, { kind: "function", data, node });
        if (data.type === "mcp_approval_request") pending.set(index, { kind: "approval", data, node });
      },
      finish(response) {
        const meta = el("p", "meta muted");
        const link = el("a", null, "Response " + response.id);
        link.href = `${prefix}/responses/${response.id}`;
        const trace = el("a", null, "Trace");
        trace.href = `${prefix}/responses/${response.id}/trace`;
        meta.append(link, " · ", trace, ` · ${response.status}`);
        if (response.usage) meta.append(` · ${response.usage.input_tokens} tokens in, ${response.usage.output_tokens} out`);
        if (response.error) turn.append(el("p", "error", `${response.error.code}: ${response.error.message}`));
        turn.append(meta);
        for (const p of pending.values()) p.kind === "function" ? functionForm(p) : approvalForm(p);
      },
      error(text) { turn.append(el("p", "error", text)); },
    };
  }

  function describe(item) {
    const parts = [];
    const title = el("h3");
    const code = (t) => el("code", null, t);
    if (item.type === "function_call") {
      title.append("Function call ", code(item.name), " ", el("span", "muted", item.call_id || ""));
      parts.push(title, el("pre", null, pretty(item.arguments)));
    } else if (item.type === "mcp_call") {
      title.append("MCP call ", code(`${item.server_label}.${item.name}`));
      parts.push(title, el("pre", null, pretty(item.arguments)));
      if (item.output) parts.push(el("h4", null, "Output"), el("pre", null, pretty(item.output)));
      if (item.error) parts.push(el("h4", "bad", "Error"), el("pre", null, pretty(item.error)));
    } else if (item.type === "mcp_list_tools") {
      title.append("MCP tools of ", code(item.server_label || ""));
      parts.push(title, el("p", null, (item.tools || []).map((t) => t.name).join(", ")));
    } else if (item.type === "mcp_approval_request") {
      title.append("Approval requested: ", code(`${item.server_label}.${item.name}`));
      parts.push(title, el("pre", null, pretty(item.arguments)));
    } else {
      title.append(item.type);
      const shown = Object.assign({}, item);
      delete shown.id;
      parts.push(title, el("pre", null, pretty(shown)));
    }
    return parts;
  }

  function functionForm({ data, node }) {
    const form = el("form", "tool-form");
    const id = "out-" + data.call_id;
    const label = el("label", null, `Output of ${data.name}`);
    label.htmlFor = id;
    const box = el("textarea");
    box.id = id;
    box.rows = 2;
    box.required = true;
    const button = el("button", null, "Send output");
    button.type = "submit";
    form.append(label, box, button);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (busy) return;
      form.remove();
      run([{ type: "function_call_output", call_id: data.call_id, output: box.value }], `output of ${data.name}`);
    });
    node.append(form);
  }

  function approvalForm({ data, node }) {
    const form = el("div", "tool-form");
    const answer = (approve) => () => {
      if (busy) return;
      form.remove();
      run([{ type: "mcp_approval_response", approval_request_id: data.id, approve }], approve ? "approved" : "denied");
    };
    const yes = el("button", null, "Approve");
    const no = el("button", "secondary", "Deny");
    yes.type = no.type = "button";
    yes.addEventListener("click", answer(true));
    no.addEventListener("click", answer(false));
    form.append(yes, no);
    node.append(form);
  }

  async function* events(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (data && data !== "[DONE]") yield JSON.parse(data);
      }
    }
  }

  async function run(input, shown) {
    busy = true;
    send.disabled = true;
    userTurn(typeof input === "string" ? input : `(${shown})`);
    const turn = assistantTurn();
    status.textContent = "Waiting for the reply…";
    const body = Object.assign(chosen(), { input, stream: true, store: true });
    if (previous) body.previous_response_id = previous;
    try {
      const answer = await fetch(endpoint, {
        method: "POST",
        credentials: "same-origin",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body: JSON.stringify(body),
      });
      if (!answer.ok) {
        let text = `HTTP ${answer.status}`;
        try { text = (await answer.json()).error.message || text; } catch (e) { /* not JSON */ }
        if (answer.status === 401) text += " (sign in again)";
        turn.error(text);
        status.textContent = "The request was refused.";
        return;
      }
      for await (const event of events(answer.body)) {
        switch (event.type) {
          case "response.created": status.textContent = "Streaming…"; break;
          case "response.output_item.added": turn.added(event.output_index, event.item); break;
          case "response.output_text.delta": turn.delta(event.output_index, event.delta); break;
          case "response.output_item.done": turn.done(event.output_index, event.item); break;
          case "response.completed":
          case "response.incomplete":
          case "response.failed":
            previous = event.response.id;
            remember(event.response.id, target.options[target.selectedIndex].text);
            turn.finish(event.response);
            status.textContent = `Reply ${event.response.status}.`;
            break;
          case "error": turn.error(event.message || (event.error && event.error.message) || "error"); break;
          default: break;
        }
      }
    } catch (error) {
      turn.error(String(error));
      status.textContent = "The connection failed.";
    } finally {
      busy = false;
      send.disabled = false;
    }
  }

  chat.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = message.value.trim();
    if (!text || busy) return;
    message.value = "";
    run(text);
    message.focus();
  });
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      chat.requestSubmit();
    }
  });
  target.addEventListener("change", reset);
  document.getElementById("new-chat").addEventListener("click", reset);
})();
