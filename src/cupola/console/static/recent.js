// Lists the responses and conversations this browser started in the playground (kept in
// localStorage by playground.js): the API has no list of them to read.
(() => {
  "use strict";
  const list = document.getElementById("recent");
  const empty = document.getElementById("recent-empty");
  let recent = [];
  try { recent = JSON.parse(localStorage.getItem("cupola.console.recent") || "[]"); } catch (e) { recent = []; }
  if (!Array.isArray(recent) || !recent.length) return;
  empty.hidden = true;
  const prefix = document.querySelector("link[rel=stylesheet]").getAttribute("href").replace(/\/static\/.*$/, "");
  for (const entry of recent) {
    if (!entry || typeof entry.id !== "string" || !/^[A-Za-z0-9_-]+$/.test(entry.id)) continue;
    const li = document.createElement("li");
    const a = document.createElement("a");
    const kind = entry.id.startsWith("conv") ? "conversations" : "responses";
    a.href = `${prefix}/${kind}/${entry.id}`;
    a.textContent = entry.id;
    li.append(a, ` ${entry.label || ""} `);
    if (entry.at) {
      const time = document.createElement("span");
      time.className = "muted";
      time.textContent = new Date(entry.at).toLocaleString();
      li.append(time);
    }
    list.append(li);
  }
})();
