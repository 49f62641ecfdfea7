// Node and link actions on the running lab (issue 18): a right-click menu on nodes and links, and a "Running lab"
// section in the properties panel. Each action is a run of the lab (POST /api/labs/<pk>/actions/), with events in
// the deploy log like a deploy's. A stopped node is drawn grey (deploy.js paints st-stopped), a link set down
// dashed; link states come with the lab's snapshot (`links`) and then its `link.state` events.
import { request } from "./api.js";
import { KINDS } from "./kinds.js";
import { splitEndpoint } from "./model.js";

const CONDITION_KEYS = ["delay", "jitter", "loss", "rate"];

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  el.append(...children);
  return el;
}

/** How the server names a link in LabState.links and link.state events: its endpoints sorted, space-joined. */
export function linkName(endpoints) {
  return [...endpoints].sort().join(" ");
}

function styleActions(cy) {
  cy.style()
    .selector("node.st-stopped").style({ "background-image-opacity": 0.35, color: "#64748b", "underlay-opacity": 0.3 })
    .selector("edge.link-down").style({ "line-style": "dashed", "line-dash-pattern": [7, 5], "line-color": "#64748b" })
    .update();
}

/**
 * initActions({labPk, cy, panel, getDoc, deployState, editable}) -> controller with event(e) (give it every lab
 * event) and menuFor(element) (tests). deployState() is deploy.js's state (deployed, nodes, run).
 */
export function initActions({ labPk, cy, panel, getDoc, deployState, editable = true }) {
  styleActions(cy);
  const state = { links: {}, menu: null };
  const toast = h("div", { class: "action-toast", id: "action-toast", role: "alert", hidden: "" });
  document.body.append(toast);

  function say(text, bad = false) {
    toast.textContent = text;
    toast.classList.toggle("bad", bad);
    toast.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => { toast.hidden = true; }, bad ? 8000 : 3000);
  }

  function paintLinks() {
    cy.batch(() => cy.edges().forEach((edge) => {
      const link = getDoc().links[edge.data("index")];
      const down = link && state.links[linkName(link.endpoints)] === "down";
      edge.toggleClass("link-down", Boolean(down));
    }));
  }
  cy.on("add", "edge", () => paintLinks());

  async function act(body, what) {
    try {
      await request("POST", `/api/labs/${labPk}/actions/`, body);
      say(`${what}…`);
    } catch (err) {
      say(`${what}: ${err.message}`, true);
    }
  }

  function running() {
    const s = deployState();
    return Boolean(s && s.deployed && editable);
  }

  function nodeItems(name) {
    const node = getDoc().nodes[name];
    const kind = node && KINDS[node.kind];
    if (!kind) return [];
    const nodeState = deployState()?.nodes?.[name];
    const items = [];
    const run = (action, label) => items.push([label, () => act({ action, node: name }, `${label} ${name}`), action]);
    if (kind.stoppable) {
      if (nodeState === "stopped") run("start", "Start");
      else { run("stop", "Stop"); run("restart", "Restart"); }
    }
    if (getDoc().links.some((lk) => lk.endpoints.some((e) => splitEndpoint(e)[0] === name))) {
      run("isolate", "Isolate (all links down)");
      run("reconnect", "Reconnect (all links up)");
    }
    return items;
  }

  function linkItems(index) {
    const link = getDoc().links[index];
    if (!link) return [];
    const down = state.links[linkName(link.endpoints)] === "down";
    const action = down ? "link-up" : "link-down";
    const label = down ? "Set link up" : "Set link down";
    return [[label, () => act({ action, link: link.endpoints }, `${label} ${link.endpoints.join(" - ")}`), action]];
  }

  function closeMenu() {
    if (state.menu) state.menu.remove();
    state.menu = null;
  }

  function openMenu(items, x, y, title) {
    closeMenu();
    if (!items.length) return;
    const menu = h("div", { class: "ctx-menu", id: "ctx-menu", role: "menu" }, h("div", { class: "ctx-title", text: title }));
    for (const [label, run, action] of items) {
      menu.append(h("button", { type: "button", role: "menuitem", "data-action": action, text: label,
        onclick: () => { closeMenu(); run(); } }));
    }
    menu.style.left = `${x}px`;
    menu.style.top = `${y}px`;
    document.body.append(menu);
    // kept inside the window: opened up and to the left of the pointer when it would not fit below or right
    const box = menu.getBoundingClientRect();
    if (box.bottom > window.innerHeight) menu.style.top = `${Math.max(0, y - box.height)}px`;
    if (box.right > window.innerWidth) menu.style.left = `${Math.max(0, x - box.width)}px`;
    state.menu = menu;
  }

  cy.on("cxttap", "node, edge", (e) => {
    if (!running()) return;
    const el = e.target;
    const rect = cy.container().getBoundingClientRect();
    const x = rect.left + e.renderedPosition.x + window.scrollX;
    const y = rect.top + e.renderedPosition.y + window.scrollY;
    if (el.isNode()) openMenu(nodeItems(el.id()), x, y, el.id());
    else openMenu(linkItems(el.data("index")), x, y, getDoc().links[el.data("index")]?.endpoints.join(" – ") || "link");
  });
  cy.on("tap", () => closeMenu());
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenu(); });
  document.addEventListener("pointerdown", (e) => { if (state.menu && !state.menu.contains(e.target)) closeMenu(); });

  // the "Running lab" section of the properties panel, below what it renders for one node or one link
  panel.extras.push((root, selection) => {
    if (!running()) return;
    const { nodes, links } = selection;
    let items = [];
    if (nodes.length === 1 && !links.length) items = nodeItems(nodes[0]);
    else if (links.length === 1 && !nodes.length) items = linkItems(links[0]);
    else return;
    const section = h("section", { class: "panel-section running-actions", "data-role": "running-actions" },
      h("h3", { text: "Running lab" }));
    const row = h("div", { class: "panel-actions" });
    for (const [label, run, action] of items) {
      row.append(h("button", { class: "btn", type: "button", "data-action": action, text: label, onclick: run }));
    }
    if (links.length === 1) { // the conditions the panel shows, applied to the running link without a redeploy
      const index = links[0];
      row.append(h("button", { class: "btn", type: "button", "data-action": "link-conditions", text: "Apply conditions now",
        title: "Apply this link's delay, jitter, loss and rate to the running lab (no redeploy)",
        onclick: () => {
          const link = getDoc().links[index];
          const conditions = Object.fromEntries(CONDITION_KEYS.filter((k) => link[k]).map((k) => [k, link[k]]));
          act({ action: "link-conditions", link: link.endpoints, conditions }, "Apply conditions");
        } }));
    }
    section.append(row);
    root.append(section);
  });

  return {
    state,
    menuFor(element) { return element.isNode() ? nodeItems(element.id()) : linkItems(element.data("index")); },
    event(e) {
      if (e.type === "snapshot") { state.links = { ...(e.links || {}) }; paintLinks(); panel.refresh(); return; }
      if (e.type === "link.state" && e.link) {
        if (e.state === "down") state.links[e.link] = "down"; else delete state.links[e.link];
        paintLinks();
      } else if (e.type === "run.finished" && e.kind === "destroy") {
        state.links = {};
        paintLinks();
      } else if (e.type === "run.failed" && e.kind === "action") {
        say(`failed: ${e.message}`, true);
      }
      if (["run.finished", "node.state", "link.state"].includes(e.type) && !panel.root.contains(document.activeElement)) {
        panel.refresh();
      }
    },
  };
}
