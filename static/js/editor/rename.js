// The inline rename of a node (double-click): Enter commits or says why it cannot, Esc cancels, leaving the box
// commits a valid name and tells why an invalid one was not taken.
import { $, editable, notify, state } from "./context.js";
import * as M from "./model.js";
import { change, select } from "./session.js";

export function startRename(node) {
  if (!editable) return;
  const input = $("inline-rename");
  const why = $("inline-rename-error");
  const old = node.id();
  const box = node.renderedBoundingBox({ includeLabels: false });
  const centre = (box.x1 + box.x2) / 2;
  input.value = old;
  input.style.left = `${centre - 70}px`;
  input.style.top = `${box.y2 + 4}px`;
  why.style.left = `${Math.max(4, centre - 130)}px`;
  why.style.top = `${box.y2 + 36}px`;
  input.hidden = false;
  why.hidden = true;
  input.classList.remove("invalid");
  input.removeAttribute("aria-invalid");
  input.focus();
  input.select();

  const problem = () => M.renameProblem(state.doc, old, input.value.trim());
  const showWhy = (text) => {
    input.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
    why.textContent = `${old} cannot be renamed to “${input.value.trim()}”: ${text}`;
    why.hidden = false;
  };
  const finish = (commit) => {
    input.removeEventListener("keydown", onKey);
    input.removeEventListener("input", onInput);
    input.removeEventListener("blur", onBlur);
    input.hidden = true;
    why.hidden = true;
    const name = input.value.trim();
    if (!commit || !name || name === old) return;
    const error = change((d) => M.renameNode(d, old, name));
    if (error) notify(`${old} was not renamed to “${name}”: ${error}`);
    else select(name);
  };
  const onKey = (e) => {
    e.stopPropagation();
    if (e.key === "Enter") {
      const text = problem();
      if (text) showWhy(text); else finish(true);
    } else if (e.key === "Escape") finish(false);
  };
  const onInput = () => {
    if (why.hidden) return;
    const text = problem(); // the message follows the typing once it is shown
    if (text) showWhy(text);
    else { why.hidden = true; input.classList.remove("invalid"); input.removeAttribute("aria-invalid"); }
  };
  const onBlur = () => finish(true);
  input.addEventListener("keydown", onKey);
  input.addEventListener("input", onInput);
  input.addEventListener("blur", onBlur);
}
