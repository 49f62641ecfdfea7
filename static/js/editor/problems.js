// Validation problems: marked on the canvas, listed in the left sidebar, shown at their fields in the panel, and
// told to the deploy controls (a refused deploy's message goes once its problems are fixed).
import { markProblems } from "./canvas.js";
import { $, state } from "./context.js";
import { h } from "./dom.js";
import * as M from "./model.js";

function targetId(target) {
  return target.node !== undefined ? target.node : `link-${target.link}`;
}

export function showProblems(problems) {
  state.problems = problems || [];
  const byTarget = new Map();
  for (const p of state.problems) {
    const target = M.problemTarget(p.path);
    if (!target) continue;
    const id = targetId(target);
    const prefix = target.node !== undefined ? `nodes.${target.node}` : `links.${target.link}`;
    const where = p.path.slice(prefix.length + 1);
    if (!byTarget.has(id)) byTarget.set(id, []);
    byTarget.get(id).push(where ? `${where}: ${p.message}` : p.message);
  }
  if (state.cy) markProblems(state.cy, byTarget);
  if (state.panel) state.panel.setProblems(state.problems);
  if (state.deploy) state.deploy.problemsChanged(state.problems);
  $("tooltip").hidden = true; // it showed the problems as they were
  renderProblemList();
}

function renderProblemList() {
  const items = state.importWarnings.map((w) => h("li", { class: "warning", text: w }));
  for (const p of state.problems.slice(0, 300)) {
    items.push(h("li", {}, h("button", { type: "button", class: "problem", "data-path": p.path,
      onclick: () => focusProblem(p) },
    h("span", { class: "path mono", text: p.path || "lab" }), h("span", { class: "message", text: p.message }))));
  }
  if (!items.length) items.push(h("li", { class: "empty", text: "No problems" }));
  $("problem-list").replaceChildren(...items);
  $("problem-count").textContent = String(state.problems.length);
  $("problem-count").classList.toggle("bad", state.problems.length > 0);
}

function focusProblem(problem) {
  const target = M.problemTarget(problem.path);
  if (!target) return;
  const el = state.cy.getElementById(targetId(target));
  if (el.empty()) return;
  state.cy.elements().unselect();
  el.select();
  state.cy.animate({ center: { eles: el }, duration: 250 });
}
