// Deploy and Destroy for the editor: buttons, a progress bar, a log of steps (a tab of the dock; after a reload it
// shows the last run), node colours by state (Cytoscape classes st-<state>), the failing node marked with its
// error, a status that tells undeployed edits apart, and the lab's live events over a WebSocket that reconnects
// with exponential backoff and resumes after the last seq it saw.
import { request } from "./api.js";
import { wsUrl } from "./dom.js";
import { NODE_STATES as STATES } from "./kinds.js";
import { clone, normalise } from "./model.js";

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

/** The document without node positions (webapp runs.services.running_part does the same on the server). */
function runningPart(doc) {
  const nodes = {};
  for (const [name, node] of Object.entries(doc.nodes || {})) {
    if (node && typeof node === "object") { const { ui, ...rest } = node; nodes[name] = rest; } else nodes[name] = node;
  }
  return { ...doc, nodes };
}

/** JSON with sorted keys: two documents compare equal whatever order their keys came in. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** One line of the log for an event: [text, class] or null. */
function describe(event) {
  switch (event.type) {
    case "run.started": return [`${event.kind} #${event.run} started`, "started"];
    case "run.step":
      return [`${event.total ? `[${event.step}/${event.total}] ` : ""}${event.node ? `${event.node}: ` : ""}${event.message || "step"}`, ""];
    case "node.state":
      return event.state === "failed" || event.state === "degraded"
        ? [`${event.node}: ${event.state}${event.message ? ` (${event.message})` : ""}`, "bad"] : null;
    case "run.finished": return [event.message || "finished", "ok"];
    case "check.passed": return [`✓ ${event.check?.title || "a check"}${event.message ? `: ${event.message}` : ""}`, "ok"];
    case "check.failed": return [`✗ ${event.check?.title || "a check"}${event.message ? `: ${event.message}` : ""}`, "bad"];
    case "check.finished": return [event.message, "ok"];
    case "run.failed": return [`failed: ${event.element ? `${event.element}: ` : ""}${event.message}`, "bad"];
    default: return event.message ? [event.message, ""] : null;
  }
}

/**
 * initDeploy({labId, cy, toolbarEl, dock, editable?, beforeDeploy?, onEvent?}) -> controller
 * labId: the lab's primary key (URLs use it). toolbarEl: where the buttons go. dock: where the log goes (dock.js).
 * The controller's editing(version, doc) and problemsChanged(problems) keep the status true to the document.
 */
export function initDeploy({ labId, cy, toolbarEl, dock, editable = true, beforeDeploy = null, onEvent = null }) {
  loadCss();
  styleStates(cy);
  const state = { lastSeq: null, nodes: {}, run: null, socket: null, retry: 0, timer: null, closed: false,
    failedNode: null, deployed: false, deployedVersion: null, deployedDoc: null, version: null, doc: null,
    refused: false, failure: null,
    outcome: null, historyLoaded: false };

  const deployBtn = el("button", { className: "tool deploy-btn", id: "btn-deploy", title: "Deploy the lab" },
    "\u25B6", el("span", { textContent: "Deploy" }));
  const destroyBtn = el("button", { className: "tool destroy-btn", id: "btn-destroy",
    title: "Remove everything the lab has in the kernel" }, "\u25A0", el("span", { textContent: "Destroy" }));
  const statusEl = el("span", { className: "deploy-status", id: "deploy-status", role: "status" });
  const bar = el("progress", { className: "deploy-progress", id: "deploy-progress", max: 1, value: 0 });
  const logToggle = el("button", { className: "tool", id: "btn-deploy-log", title: "Show the deploy log",
    ariaPressed: "false" }, "\u2630", el("span", { textContent: "Log" }));
  // the progress runs along the bottom of the status pill: one fixed-width slot for both
  toolbarEl.append(el("div", { className: "toolbar-group deploy-group" },
    deployBtn, destroyBtn, el("div", { className: "deploy-meter" }, statusEl, bar), logToggle));

  const logList = el("ol", { className: "deploy-log-list", id: "deploy-log-list" });
  const logPanel = el("section", { className: "deploy-log", id: "deploy-log", ariaLabel: "Deploy log" }, logList);

  function setLog(open) {
    const item = dock.find("log");
    if (open && !item) {
      dock.open("log", "Deploy log", "log", (body) => {
        body.append(logPanel);
        logPanel.scrollTop = logPanel.scrollHeight;
        return { dispose: () => logToggle.setAttribute("aria-pressed", "false") };
      });
    } else if (open) dock.show(item);
    else if (item) dock.remove(item);
    logToggle.setAttribute("aria-pressed", String(open));
  }
  logToggle.addEventListener("click", () => setLog(!dock.find("log") || dock.active !== dock.find("log")));

  function setStatus(kind, text, title = text) {
    statusEl.dataset.state = kind;
    statusEl.textContent = text;
    statusEl.title = title;
  }

  /** The status from what is known: a run, a refusal, a failure, or deployed (with or without newer edits). */
  function showStatus() {
    bar.hidden = !state.run; // only while a run goes
    if (state.run) {
      const doing = { destroy: "Destroying", check: "Checking", reset: "Resetting", action: "Working" }[state.run.kind]
        || "Deploying";
      return setStatus("running", `${doing}…`);
    }
    if (state.refused) {
      return setStatus("error", "Fix the problems first",
        "The lab has problems (listed on the left and in the log): fix them, then deploy");
    }
    if (state.failure) return setStatus("error", state.failure);
    if (state.deployed) {
      if (behind()) {
        return setStatus("stale", "Edits not deployed",
          `Running version ${state.deployedVersion ?? "?"}; you are editing version ${state.version}. Deploy applies the edits.`);
      }
      return setStatus("deployed", "Deployed");
    }
    return setStatus("idle", state.outcome === "destroyed" ? "Destroyed" : "Not deployed");
  }

  /** Whether the document being edited differs from the one running (canvas positions do not count). */
  function behind() {
    if (state.deployedDoc && state.doc) return canonical(runningPart(state.doc)) !== canonical(state.deployedDoc);
    // no document to compare with (a deploy older than this page's server): any newer version counts
    return state.deployedVersion !== null && state.version !== null && state.version > state.deployedVersion;
  }

  function log(text, kind = "", { before = null, run = null } = {}) {
    const line = el("li", { className: kind, textContent: text });
    if (run !== null && run !== undefined) line.dataset.run = String(run);
    if (before) logList.insertBefore(line, before); else logList.append(line);
    while (logList.children.length > MAX_LOG) logList.firstChild.remove();
    logPanel.scrollTop = logPanel.scrollHeight;
  }

  /** After a reload the log starts with the last run's lines (older than anything the socket brings). */
  async function loadHistory(upTo) {
    if (state.historyLoaded) return;
    state.historyLoaded = true;
    try {
      const runs = await request("GET", `/api/labs/${labId}/runs`);
      if (!runs.length) return;
      const run = await request("GET", `/api/runs/${runs[0].id}`);
      const first = logList.firstChild;
      for (const event of run.events) {
        const line = event.seq <= upTo ? describe(event) : null;
        if (line) log(line[0], line[1], { before: first });
      }
    } catch (err) {
      console.warn("the last run's log is unavailable:", err);
    }
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
      state.deployed = Boolean(event.deployed);
      state.deployedVersion = event.deployed_version ?? null;
      state.deployedDoc = event.deployed_document ? runningPart(normalise(clone(event.deployed_document))) : null;
      busy(Boolean(event.run));
      const last = event.last_run;
      if (!event.run && last && last.status === "failed") {
        state.failure = `Last ${last.kind} failed: ${last.error}`;
        markFailure(last.error_element, last.error);
      }
      showStatus();
      loadHistory(event.seq);
      if (onEvent) onEvent(event);
      return;
    }
    if (typeof event.seq !== "number") return;
    if (state.lastSeq !== null && event.seq <= state.lastSeq) return; // seen already
    state.lastSeq = event.seq;
    const line = describe(event);
    if (line) log(line[0], line[1], { run: event.run });
    switch (event.type) {
      case "run.started":
        state.run = { id: event.run, kind: event.kind, status: "running" };
        state.failure = null;
        state.refused = false;
        busy(true);
        clearFailure();
        bar.value = 0;
        break;
      case "run.step":
        if (event.total) { bar.max = event.total; bar.value = event.step || 0; }
        break;
      case "node.state":
        state.nodes[event.node] = event.state;
        paint(event.node, event.state);
        if (event.state === "failed" && event.message) markFailure(`nodes.${event.node}`, event.message);
        break;
      case "run.finished":
        state.run = null;
        busy(false);
        bar.value = bar.max;
        if (event.kind === "check") break; // a check changes nothing that runs
        state.deployed = event.kind !== "destroy";
        if (event.kind === "action" && !event.document) break; // a node or link action: what runs is the same
        state.deployedVersion = state.deployed ? (event.version ?? state.version) : null;
        state.deployedDoc = state.deployed && event.document ? runningPart(normalise(clone(event.document))) : null;
        state.outcome = event.kind === "destroy" ? "destroyed" : "deployed";
        break;
      case "run.failed":
        state.run = null;
        busy(false);
        state.failure = `Failed: ${event.message}`;
        markFailure(event.element, event.message);
        setLog(true);
        break;
      default:
    }
    showStatus();
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
      // the run's first events may have come over the socket before this answer: "queued" goes before them
      log(`${kind} #${run.id} queued`, "", { before: logList.querySelector(`li[data-run="${run.id}"]`), run: run.id });
    } catch (err) {
      busy(false);
      if (err.status === 400 && err.body && err.body.errors) {
        for (const e of err.body.errors) log(`${e.path}: ${e.message}`, "bad");
        state.refused = true; // until the problems are fixed (problemsChanged)
        showStatus();
        const first = err.body.errors[0];
        if (first) markFailure(first.path, first.message);
        setLog(true);
      } else {
        setStatus("error", err.message);
        log(err.message, "bad");
        // a quota refusal names the labs that use the quota: link to each, so one can be destroyed
        for (const lab of (err.body && Array.isArray(err.body.labs)) ? err.body.labs : []) {
          logList.append(el("li", { className: "bad" }, "uses the quota: ",
            el("a", { href: lab.url, textContent: `${lab.name} (${lab.owner})`, className: "quota-lab" })));
        }
        if (err.body && Array.isArray(err.body.labs)) setLog(true);
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
    /** The editor saved version `version` of the document `doc`. */
    editing(version, doc) { state.version = version; state.doc = doc; if (state.lastSeq !== null) showStatus(); },
    /** The document's problems changed: a deploy refused for them stops saying so once none is left. */
    problemsChanged(problems) {
      if (!state.refused) return;
      const at = `nodes.${state.failedNode}`;
      if (!problems.some((p) => p.path === at || p.path.startsWith(`${at}.`))) clearFailure();
      if (problems.length) return;
      state.refused = false;
      showStatus();
    },
    close() { state.closed = true; clearTimeout(state.timer); if (state.socket) state.socket.close(); },
    reconnect() { if (state.socket) state.socket.close(); },
  };
}
