// Deploy and Destroy for the editor: buttons, a progress bar, a collapsible log of steps, node colours by
// state (Cytoscape classes st-<state>), the failing node marked with its error, and the lab's live events
// over a WebSocket that reconnects with exponential backoff and resumes after the last seq it saw.
import { request } from "./api.js";
import { wsUrl } from "./dom.js";
import { NODE_STATES as STATES } from "./kinds.js";

const COLOURS = { absent: "#94a3b8", starting: "#f59e0b", running: "#16a34a", degraded: "#ea580c",
  stopped: "#94a3b8", failed: "#dc2626" };
const MAX_LOG = 500;

function el(tag, attrs = {}, ...children) {
  const node = Object.assign(document.createElement(tag), attrs);
  node.append(...children);
  return node;
}

function loadCss() {
  const href = new URL("../../css/deploy.css", import.meta.url).href;
  if (!document.querySelector(`link[href="${href}"]`)) {
    document.head.append(el("link", { rel: "stylesheet", href }));
  }
}

function styleStates(cy) {
  const style = cy.style();
  for (const state of STATES) {
    style.selector(`node.st-${state}`).style({
      "underlay-color": COLOURS[state], "underlay-opacity": state === "absent" ? 0.18 : 0.45,
      "underlay-padding": 7, "underlay-shape": "ellipse",
    });
  }
  style.selector("node.deploy-failed").style({ "border-width": 3, "border-color": "#dc2626", color: "#b91c1c" });
  style.update();
}

/**
 * initDeploy({labId, cy, toolbarEl, container?, editable?, beforeDeploy?, onEvent?}) -> controller
 * labId: the lab's primary key (URLs use it). toolbarEl: where the buttons go. container: where the log goes.
 */
export function initDeploy({ labId, cy, toolbarEl, container = document.body, editable = true,
  beforeDeploy = null, onEvent = null }) {
  loadCss();
  styleStates(cy);
  const state = { lastSeq: null, nodes: {}, run: null, socket: null, retry: 0, timer: null, closed: false,
    failedNode: null };

  const deployBtn = el("button", { className: "tool deploy-btn", id: "btn-deploy", title: "Deploy the lab" },
    "\u25B6", el("span", { textContent: "Deploy" }));
  const destroyBtn = el("button", { className: "tool destroy-btn", id: "btn-destroy",
    title: "Remove everything the lab has in the kernel" }, "\u25A0", el("span", { textContent: "Destroy" }));
  const statusEl = el("span", { className: "deploy-status", id: "deploy-status", role: "status" });
  const bar = el("progress", { className: "deploy-progress", id: "deploy-progress", max: 1, value: 0 });
  const logToggle = el("button", { className: "tool", id: "btn-deploy-log", title: "Show the deploy log",
    ariaPressed: "false" }, "\u2630", el("span", { textContent: "Log" }));
  toolbarEl.append(el("div", { className: "toolbar-group deploy-group" },
    deployBtn, destroyBtn, bar, statusEl, logToggle));

  const logList = el("ol", { className: "deploy-log-list", id: "deploy-log-list" });
  const panel = el("section", { className: "deploy-log", id: "deploy-log", hidden: true, ariaLabel: "Deploy log" },
    el("header", {}, el("h2", { textContent: "Deploy log" }),
      el("button", { className: "tool icon", title: "Hide", textContent: "\u2715",
        onclick: () => setLog(false) })),
    logList);
  container.append(panel);

  function setLog(open) {
    panel.hidden = !open;
    logToggle.setAttribute("aria-pressed", String(open));
  }
  logToggle.addEventListener("click", () => setLog(panel.hidden));

  function setStatus(kind, text) {
    statusEl.dataset.state = kind;
    statusEl.textContent = text;
    statusEl.title = text;
  }

  function log(text, kind = "") {
    logList.append(el("li", { className: kind, textContent: text }));
    while (logList.children.length > MAX_LOG) logList.firstChild.remove();
    logList.scrollTop = logList.scrollHeight;
  }

  function busy(active) {
    deployBtn.disabled = !editable || active;
    destroyBtn.disabled = !editable || active;
  }

  function paint(name, nodeState) {
    const node = cy.getElementById(name);
    if (node.empty()) return;
    node.removeClass(STATES.map((s) => `st-${s}`).join(" "));
    node.addClass(`st-${nodeState}`);
    node.data("deployState", nodeState);
  }

  function paintAll() {
    cy.batch(() => cy.nodes().forEach((n) => paint(n.id(), state.nodes[n.id()] || "absent")));
  }
  cy.on("add", "node", (e) => paint(e.target.id(), state.nodes[e.target.id()] || "absent"));

  function markFailure(element, message) {
    clearFailure();
    const match = /^nodes\.([^.]+)/.exec(element || "");
    if (!match) return;
    const node = cy.getElementById(match[1]);
    if (node.empty()) return;
    state.failedNode = match[1];
    node.addClass("deploy-failed");
    node.data("problems", [...(node.data("problems") || []), `deploy: ${message}`]);
  }

  function clearFailure() {
    if (!state.failedNode) return;
    const node = cy.getElementById(state.failedNode);
    node.removeClass("deploy-failed");
    const rest = (node.data("problems") || []).filter((m) => !m.startsWith("deploy: "));
    if (rest.length) node.data("problems", rest); else node.removeData("problems");
    state.failedNode = null;
  }

  function handle(event) {
    if (event.type === "snapshot") {
      state.nodes = { ...event.nodes };
      paintAll();
      state.run = event.run;
      busy(Boolean(event.run));
      const last = event.last_run;
      if (event.run) setStatus("running", `${event.run.kind} ${event.run.status}…`);
      else if (last && last.status === "failed") {
        setStatus("error", `Last ${last.kind} failed: ${last.error}`);
        markFailure(last.error_element, last.error);
      } else setStatus(event.deployed ? "deployed" : "idle", event.deployed ? "Deployed" : "Not deployed");
      return;
    }
    if (typeof event.seq !== "number") return;
    if (state.lastSeq !== null && event.seq <= state.lastSeq) return; // seen already
    state.lastSeq = event.seq;
    switch (event.type) {
      case "run.started":
        state.run = { id: event.run, kind: event.kind, status: "running" };
        busy(true);
        clearFailure();
        bar.value = 0;
        setStatus("running", `${event.kind === "destroy" ? "Destroying" : "Deploying"}…`);
        log(`${event.kind} #${event.run} started`, "started");
        break;
      case "run.step":
        if (event.total) { bar.max = event.total; bar.value = event.step || 0; }
        log(`${event.total ? `[${event.step}/${event.total}] ` : ""}${event.node ? `${event.node}: ` : ""}${event.message || "step"}`);
        break;
      case "node.state":
        state.nodes[event.node] = event.state;
        paint(event.node, event.state);
        if (event.state === "failed" || event.state === "degraded") {
          log(`${event.node}: ${event.state}${event.message ? ` (${event.message})` : ""}`, "bad");
          if (event.state === "failed" && event.message) markFailure(`nodes.${event.node}`, event.message);
        }
        break;
      case "run.finished":
        state.run = null;
        busy(false);
        bar.value = bar.max;
        setStatus(event.kind === "destroy" ? "idle" : "deployed", event.kind === "destroy" ? "Destroyed" : "Deployed");
        log(event.message || "finished", "ok");
        break;
      case "run.failed":
        state.run = null;
        busy(false);
        setStatus("error", `Failed: ${event.message}`);
        log(`failed: ${event.element ? `${event.element}: ` : ""}${event.message}`, "bad");
        markFailure(event.element, event.message);
        setLog(true);
        break;
      default:
        if (event.message) log(event.message);
    }
    if (onEvent) onEvent(event);
  }

  function connect() {
    if (state.closed) return;
    const socket = new WebSocket(wsUrl(`/ws/labs/${labId}/`));
    state.socket = socket;
    socket.addEventListener("message", (msg) => {
      const event = JSON.parse(msg.data);
      if (event.type === "snapshot") {
        state.retry = 0;
        const after = state.lastSeq === null ? event.seq : state.lastSeq;
        if (state.lastSeq === null) state.lastSeq = event.seq;
        handle(event);
        socket.send(JSON.stringify({ type: "resume", after }));
      } else {
        handle(event);
      }
    });
    socket.addEventListener("close", (e) => {
      if (state.closed || e.code === 4403 || e.code === 4404) {
        if (e.code === 4403 || e.code === 4404) setStatus("error", "Live status unavailable (not allowed)");
        return;
      }
      const delay = Math.min(15000, 500 * 2 ** state.retry) * (0.8 + Math.random() * 0.4);
      state.retry += 1;
      setStatus("offline", "Reconnecting…");
      state.timer = setTimeout(connect, delay);
    });
  }

  async function start(kind) {
    busy(true);
    try {
      if (kind === "deploy" && beforeDeploy) await beforeDeploy();
      const run = await request("POST", `/api/labs/${labId}/${kind}`);
      setStatus("running", `${kind} queued…`);
      log(`${kind} #${run.id} queued`);
    } catch (err) {
      busy(false);
      if (err.status === 400 && err.body && err.body.errors) {
        for (const e of err.body.errors) log(`${e.path}: ${e.message}`, "bad");
        setStatus("error", "The lab has problems; fix them first");
        const first = err.body.errors[0];
        if (first) markFailure(first.path, first.message);
        setLog(true);
      } else {
        setStatus("error", err.message);
        log(err.message, "bad");
        if (err.status === 409) busy(true);
      }
    }
  }

  deployBtn.addEventListener("click", () => start("deploy"));
  destroyBtn.addEventListener("click", () => {
    if (window.confirm("Destroy this lab? Every node stops and its state in the kernel is removed.")) start("destroy");
  });

  busy(!editable);
  setStatus("idle", "Connecting…");
  paintAll();
  connect();
  return {
    state,
    close() { state.closed = true; clearTimeout(state.timer); if (state.socket) state.socket.close(); },
    reconnect() { if (state.socket) state.socket.close(); },
  };
}
