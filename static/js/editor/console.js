// Consoles and captures in the editor: an action bar for the selected node or link, and tabs in the dock below the
// canvas (dock.js), each a terminal (xterm.js over /ws/labs/<pk>/console/<node>/) or a live packet list (capture.js);
// one tab per node's console and per interface's or link's capture.
// The server decides what is allowed and running; buttons only offer what makes sense for the selection.
import { Terminal } from "/static/vendor/@xterm/xterm/lib/xterm.mjs";
import { FitAddon } from "/static/vendor/@xterm/addon-fit/lib/addon-fit.mjs";
import { CaptureView } from "./capture.js";
import { h, wsUrl } from "./dom.js";
import { CAPTURE_KINDS, CONSOLE_KINDS } from "./kinds.js";

const CLOSE_REASONS = { 4403: "not allowed", 4404: "no such node", 4409: "not running", 4429: "too many consoles" };

function loadCss(href) {
  if (document.querySelector(`link[href="${href}"]`)) return;
  document.head.append(h("link", { rel: "stylesheet", href }));
}

/** One terminal tab. */
class ConsoleView {
  constructor(labPk, node, body, kind = "shell") {
    this.node = node;
    this.body = body;
    this.term = new Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.status = h("div", { class: "term-status", role: "status", text: `Connecting to ${node}…` });
    this.screen = h("div", { class: "term-screen", "data-node": node });
    body.append(this.status, this.screen);
    this.term.open(this.screen);
    this.encoder = new TextEncoder();
    const query = kind === "shell" ? "" : `?kind=${encodeURIComponent(kind)}`;
    this.socket = new WebSocket(wsUrl(`/ws/labs/${labPk}/console/${encodeURIComponent(node)}/${query}`));
    this.socket.binaryType = "arraybuffer";
    this.socket.addEventListener("message", (e) => this.onMessage(e));
    this.socket.addEventListener("close", (e) => this.onClose(e));
    this.term.onData((data) => this.send(this.encoder.encode(data)));
    this.term.onBinary((data) => this.send(Uint8Array.from(data, (c) => c.charCodeAt(0))));
    this.term.onResize(({ rows, cols }) => this.control({ type: "resize", rows, cols }));
    this.observer = new ResizeObserver(() => this.refit());
    this.observer.observe(this.screen);
  }

  send(bytes) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(bytes);
  }

  control(message) {
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  refit() {
    if (this.screen.offsetParent === null) return; // hidden tab
    try { this.fit.fit(); } catch { /* not laid out yet */ }
  }

  onMessage(e) {
    if (typeof e.data === "string") {
      const msg = JSON.parse(e.data);
      if (msg.type !== "status") return;
      this.status.dataset.state = msg.state;
      this.status.textContent = msg.state === "open"
        ? `${this.node}: connected${msg.message ? ` (${msg.message})` : ""}`
        : `${this.node}: ${msg.message || msg.state}`;
      if (msg.state === "open") {
        this.refit();
        this.control({ type: "resize", rows: this.term.rows, cols: this.term.cols });
        this.term.focus();
      }
      return;
    }
    this.term.write(new Uint8Array(e.data));
  }

  onClose(e) {
    if (this.status.dataset.state !== "closed") {
      this.status.dataset.state = "closed";
      this.status.textContent = `${this.node}: disconnected${CLOSE_REASONS[e.code] ? ` (${CLOSE_REASONS[e.code]})` : ""}`;
    } else if (CLOSE_REASONS[e.code]) {
      this.status.textContent += ` (${CLOSE_REASONS[e.code]})`;
    }
  }

  focus() { this.refit(); this.term.focus(); }

  dispose() {
    this.observer.disconnect();
    this.socket.close();
    this.term.dispose();
  }
}

/**
 * initConsoles({labPk, cy, getDoc, nodeState, dock, sidebar}) -> controller.
 * nodeState(name) gives the deploy state when known ("running", ...), or undefined.
 */
export function initConsoles({ labPk, cy, getDoc, dock, nodeState = () => undefined, sidebar = document.body }) {
  loadCss("/static/vendor/@xterm/xterm/css/xterm.css");
  loadCss("/static/css/console.css");
  const bar = h("div", { class: "lab-actions", id: "lab-actions", hidden: true, "aria-label": "Lab actions" });
  sidebar.prepend(bar);

  function openConsole(node, kind = "shell") {
    const title = kind === "vtysh" ? `${node} (vtysh)` : node;
    return dock.open(`${kind === "vtysh" ? "vtysh" : "console"}:${node}`, title, "console",
      (body) => new ConsoleView(labPk, node, body, kind));
  }

  function openCapture(target) {
    const link = target.link !== undefined;
    const title = link ? `capture ${target.label}` : `capture ${target.node}:${target.interface}`;
    const key = link ? `capture:link-${target.link}` : `capture:${target.node}:${target.interface}`;
    return dock.open(key, title, "capture", (body) => new CaptureView(labPk, target, body));
  }

  function usable(node) {
    const state = nodeState(node);
    return state === undefined || state === "running";
  }

  function render() {
    const doc = getDoc();
    const nodes = cy.nodes(":selected").map((n) => n.id());
    const links = cy.edges(":selected").map((e) => e.data("index"));
    bar.replaceChildren();
    if (nodes.length === 1 && !links.length && doc.nodes[nodes[0]]) {
      const name = nodes[0];
      const node = doc.nodes[name];
      if (CONSOLE_KINDS.has(node.kind)) {
        bar.append(h("button", { class: "btn", id: "btn-console", type: "button", disabled: !usable(name),
          title: usable(name) ? `Open a console on ${name}` : `${name} is not running`,
          text: "\u276F Console", onclick: () => openConsole(name) }));
        if (node.routing) { // a router with routing: runs FRR (netops.frr)
          bar.append(h("button", { class: "btn", id: "btn-vtysh", type: "button", disabled: !usable(name),
            title: usable(name) ? `Open FRR's vtysh on ${name}` : `${name} is not running`,
            text: "\u276F FRR (vtysh)", onclick: () => openConsole(name, "vtysh") }));
        }
        for (const iface of CAPTURE_KINDS.has(node.kind) ? Object.keys(node.interfaces || {}) : []) {
          bar.append(h("button", { class: "btn capture-iface", type: "button", "data-iface": iface,
            disabled: !usable(name), title: `Capture packets on ${name}:${iface}`, text: `\u25C9 ${iface}`,
            onclick: () => openCapture({ node: name, interface: iface }) }));
        }
      }
    } else if (links.length === 1 && !nodes.length && doc.links[links[0]]) {
      const index = links[0];
      const ends = doc.links[index].endpoints;
      const running = ends.every((e) => usable(e.split(":")[0]));
      bar.append(h("button", { class: "btn", id: "btn-capture", type: "button", disabled: !running,
        title: `Capture packets on ${ends[0]} \u2194 ${ends[1]}`, text: "\u25C9 Capture",
        onclick: () => openCapture({ link: index, label: `${ends[0]} \u2194 ${ends[1]}` }) }));
    }
    bar.hidden = !bar.childElementCount;
  }

  cy.on("select unselect", () => setTimeout(render, 0));
  render();
  return { openConsole, openCapture, render, dock };
}
