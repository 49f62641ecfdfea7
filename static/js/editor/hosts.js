// Which lab host each node runs on, for a lab deployed across hosts (issue 13): a badge under each node with its
// host's name on that host's colour, and a toolbar toggle ("Hosts") that shows or hides them. The placement comes
// with the lab's snapshot and with the run.started event of a run across hosts; a lab on one host shows nothing
// and the toggle stays hidden.
import { h } from "./dom.js";

// [badge background, badge border], one per host in name order; past the end they repeat
const PALETTE = [["#dbeafe", "#2563eb"], ["#dcfce7", "#16a34a"], ["#fef3c7", "#d97706"], ["#fce7f3", "#db2777"],
  ["#ede9fe", "#7c3aed"], ["#cffafe", "#0891b2"], ["#fee2e2", "#dc2626"], ["#e5e7eb", "#4b5563"]];

export function initHosts({ cy, toolbarEl }) {
  const state = { placement: {}, hosts: [], on: true };
  const button = h("button", { class: "tool", id: "btn-hosts", type: "button", hidden: true, "aria-pressed": "true",
    title: "Show which lab host each node runs on",
    onclick: () => { state.on = !state.on; button.setAttribute("aria-pressed", String(state.on)); render(); } },
  "\u2302", h("span", { text: "Hosts" }));
  toolbarEl.append(button);

  cy.style().selector("node.on-host").style({
    label: "data(hostLabel)", "text-background-color": "data(hostBg)", "text-background-opacity": 1,
    "text-border-width": 1, "text-border-color": "data(hostLine)", "text-border-opacity": 1,
  }).update();

  function colour(host) {
    return PALETTE[state.hosts.indexOf(host) % PALETTE.length];
  }

  function mark(node) {
    const host = state.placement[node.id()];
    if (!state.on || !host || state.hosts.length < 2) {
      node.removeClass("on-host");
      node.removeData("host");
      return;
    }
    const [bg, line] = colour(host);
    node.data({ host, hostLabel: `${node.data("label") || node.id()}\n\u2302 ${host}`, hostBg: bg, hostLine: line });
    node.addClass("on-host");
  }

  function render() {
    cy.batch(() => cy.nodes().forEach(mark));
  }
  cy.on("add", "node", (e) => mark(e.target));
  cy.on("data", "node", (e) => { // a renamed or re-labelled node keeps its badge current
    const node = e.target;
    if (node.hasClass("on-host") && !node.data("hostLabel").startsWith(`${node.data("label") || node.id()}\n`)) mark(node);
  });

  /** The placement ({node: host}) of what runs now; {} or null for a lab on one host or not deployed. */
  function apply(placement) {
    state.placement = placement && typeof placement === "object" ? { ...placement } : {};
    state.hosts = [...new Set(Object.values(state.placement))].sort();
    button.hidden = state.hosts.length < 2;
    render();
  }

  function event(ev) {
    if (ev.type === "snapshot") apply(ev.placement);
    else if (ev.type === "run.started" && ev.placement) apply(ev.placement);
    else if (ev.type === "run.finished" && ev.kind === "destroy") apply({});
  }

  return { apply, event, state, colour };
}
