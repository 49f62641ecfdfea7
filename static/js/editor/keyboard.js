// Keyboard shortcuts of the canvas (not while typing in a field): undo/redo, select all, delete, link mode.
import { state } from "./context.js";
import { deleteSelection, redo, undo } from "./session.js";
import { setLinkMode } from "./wiring.js";

export function wireKeyboard() {
  document.addEventListener("keydown", (e) => {
    if (!state.cy) return;
    const typing = e.target.closest && e.target.closest("input, textarea, select, [contenteditable]");
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    if (typing) return;
    if (mod && key === "z") { e.preventDefault(); if (e.shiftKey) redo(); else undo(); }
    else if (mod && key === "y") { e.preventDefault(); redo(); }
    else if (mod && key === "a") { e.preventDefault(); state.cy.elements().select(); }
    else if (e.key === "Delete" || e.key === "Backspace") { e.preventDefault(); deleteSelection(); }
    else if (e.key === "Escape") { setLinkMode(false); state.cy.elements().unselect(); }
    else if (!mod && key === "l") setLinkMode(!state.linkMode);
  });
}
