// Lab checks in the editor (issue 16): a "Check" button, a panel listing each check with a live green/red mark, the
// nodes and links a failing check names highlighted on the canvas, the score, and (the owner's own checks) editing
// the `checks:` list as JSON in the panel (the YAML export/import carries the same list). A lab started from a
// template shows the template's checks as the server lets this person see them (webapp.checks.services).
import { request } from "./api.js";

function el(tag, attrs = {}, ...children) {
  const node = Object.assign(document.createElement(tag), attrs);
  node.append(...children);
  return node;
}

const MARK = { passed: "✓", failed: "✗", pending: "…", none: "•" };

/** initChecks({labPk, cy, toolbarEl, sidebar, getDoc, change, editable}) -> {onEvent(event), refresh()} */
export function initChecks({ labPk, cy, toolbarEl, sidebar, getDoc, change, editable }) {
  const state = { checks: [], source: "document", editableChecks: false, count: 0, marks: {}, running: false };
  const button = el("button", { className: "tool", id: "btn-check", title: "Run the lab's checks" }, "✓",
    el("span", { textContent: "Check" }));
  const group = toolbarEl.querySelector(".deploy-group");
  if (group) group.insertBefore(button, group.querySelector(".deploy-meter")); else toolbarEl.append(button);
  const score = el("span", { className: "checks-score", id: "checks-score" });
  const list = el("ul", { className: "checks-list", id: "checks-list" });
  const note = el("p", { className: "hint checks-note", id: "checks-note" });
  const editor = el("textarea", { className: "checks-editor mono", id: "checks-editor", rows: 10, hidden: true,
    spellcheck: false, ariaLabel: "Checks as JSON" });
  const editButton = el("button", { className: "btn", id: "btn-checks-edit", type: "button", hidden: true },
    "Edit checks");
  const applyButton = el("button", { className: "btn btn-primary", id: "btn-checks-apply", type: "button",
    hidden: true }, "Apply");
  const resetButton = el("button", { className: "btn btn-danger", id: "btn-reset", type: "button", hidden: true,
    title: "Destroy this lab and deploy the template version it was started from again" }, "Reset to template");
  const section = el("details", { className: "checks-panel", id: "checks-panel", open: true },
    el("summary", {}, "Checks ", score), note, list, editor, el("div", { className: "checks-actions" },
      editButton, applyButton, resetButton));
  sidebar.prepend(section);
  styleCanvas(cy);

  function visibleChecks() {
    if (state.source === "document" && state.editableChecks) {
      const doc = getDoc();
      return Array.isArray(doc.checks) ? doc.checks.filter((c) => c && typeof c === "object") : [];
    }
    return state.checks;
  }

  function render() {
    const checks = visibleChecks();
    list.replaceChildren(...checks.map((c) => {
      const mark = state.marks[c.id] || { status: "none" };
      const item = el("li", { className: `check-item check-${mark.status}` },
        el("span", { className: "check-mark", textContent: MARK[mark.status] || MARK.none }),
        el("span", { className: "check-title", textContent: c.title || c.id }),
        el("span", { className: "check-points muted", textContent: ` ${c.points ?? 1} pt` }));
      item.dataset.check = c.id;
      item.dataset.status = mark.status;
      if (mark.message) item.append(el("div", { className: "check-message mono", textContent: mark.message }));
      if (ownChecks()) item.append(controls(c));
      item.addEventListener("mouseenter", () => highlight(mark));
      item.addEventListener("mouseleave", () => highlightFailures());
      return item;
    }));
    const hidden = state.count - checks.length;
    note.textContent = !state.count && !checks.length ? "No checks. Add a checks: list to say what working means."
      : hidden > 0 ? `${hidden} more check${hidden > 1 ? "s are" : " is"} hidden by the instructor.` : "";
    button.disabled = state.running || !(state.count || checks.length);
    editButton.hidden = !ownChecks();
    resetButton.hidden = !(editable && state.source === "template");
  }

  const ownChecks = () => editable && state.source === "document";

  /** The owner's controls of one check: who sees it when the lab is published as a template, and remove. */
  function controls(check) {
    const select = el("select", { className: "check-visibility", title: "What students of a template see" },
      ...[["details", "students see all"], ["title", "students see the title"], ["hidden", "hidden from students"]]
        .map(([value, label]) => el("option", { value, textContent: label, selected: (check.visibility || "details") === value })));
    select.addEventListener("change", () => change((d) => {
      const target = (d.checks || []).find((c) => c && c.id === check.id);
      if (!target) return;
      if (select.value === "details") delete target.visibility; else target.visibility = select.value;
    }));
    const remove = el("button", { className: "btn check-remove", type: "button", title: "Remove this check" }, "×");
    remove.addEventListener("click", () => {
      change((d) => {
        d.checks = (d.checks || []).filter((c) => !c || c.id !== check.id);
        if (!d.checks.length) delete d.checks;
      });
      render();
    });
    return el("div", { className: "check-controls" }, select, remove);
  }

  function highlight(mark) {
    cy.elements().removeClass("check-failed");
    if (!mark || mark.status !== "failed") return;
    for (const n of mark.nodes || []) cy.getElementById(n).addClass("check-failed");
    for (const i of mark.links || []) cy.getElementById(`link-${i}`).addClass("check-failed");
  }

  function highlightFailures() {
    cy.elements().removeClass("check-failed");
    for (const mark of Object.values(state.marks)) {
      if (mark.status !== "failed") continue;
      for (const n of mark.nodes || []) cy.getElementById(n).addClass("check-failed");
      for (const i of mark.links || []) cy.getElementById(`link-${i}`).addClass("check-failed");
    }
  }

  function setScore(result) {
    score.textContent = result ? `${result.earned}/${result.possible} (${result.percent}%)` : "";
    score.dataset.percent = result ? String(result.percent) : "";
  }

  function markFrom(outcome) {
    return { status: outcome.passed ? "passed" : "failed", message: outcome.message || "",
      nodes: outcome.nodes || [], links: outcome.links || [] };
  }

  async function refresh() {
    const body = await request("GET", `/api/labs/${labPk}/checks/`);
    state.checks = body.checks;
    state.source = body.source;
    state.editableChecks = body.editable;
    state.count = body.count;
    state.marks = {};
    for (const o of body.result?.checks || []) state.marks[o.id] = markFrom(o);
    setScore(body.result);
    render();
    highlightFailures();
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await request("POST", `/api/labs/${labPk}/check`);
    } catch (err) {
      note.textContent = `Cannot check: ${err.message}`;
      button.disabled = false;
    }
  });

  resetButton.addEventListener("click", async () => {
    if (!window.confirm("Reset to template? This destroys the lab and deploys the template again: "
      + "your changes to the lab are lost.")) return;
    try {
      await request("POST", `/api/labs/${labPk}/reset/`);
      window.setTimeout(() => window.location.reload(), 500); // the document was replaced: load it again
    } catch (err) {
      note.textContent = `Cannot reset: ${err.message}`;
    }
  });

  editButton.addEventListener("click", () => {
    editor.hidden = !editor.hidden;
    applyButton.hidden = editor.hidden;
    if (!editor.hidden) editor.value = JSON.stringify(getDoc().checks || [], null, 2);
  });
  applyButton.addEventListener("click", () => {
    let checks;
    try {
      checks = JSON.parse(editor.value || "[]");
    } catch (err) {
      note.textContent = `Not JSON: ${err.message}`;
      return;
    }
    change((d) => { if (Array.isArray(checks) && checks.length) d.checks = checks; else delete d.checks; });
    editor.hidden = true;
    applyButton.hidden = true;
    note.textContent = "";
    render();
  });

  function onEvent(event) {
    if (event.type === "run.started" && event.kind === "check") {
      state.running = true;
      state.marks = Object.fromEntries(visibleChecks().map((c) => [c.id, { status: "pending" }]));
      setScore(null);
      highlightFailures();
    } else if ((event.type === "check.passed" || event.type === "check.failed") && event.check?.id) {
      state.marks[event.check.id] = markFrom({ ...event.check, message: event.message });
      highlightFailures();
    } else if (event.type === "check.finished") {
      setScore(event);
    } else if ((event.type === "run.finished" || event.type === "run.failed") && event.kind === "check") {
      state.running = false;
      if (event.type === "run.failed") note.textContent = `Check failed to run: ${event.message}`;
      refresh().catch(() => {});
    } else if (event.type === "snapshot") {
      state.running = event.run?.kind === "check";
    } else return;
    render();
  }

  refresh().catch((err) => { note.textContent = `Checks unavailable: ${err.message}`; });
  return { onEvent, refresh, render };
}

function styleCanvas(cy) {
  cy.style().selector("node.check-failed").style({ "border-width": 4, "border-color": "#dc2626" })
    .selector("edge.check-failed").style({ "line-color": "#dc2626", "line-style": "dashed", width: 4 }).update();
}
