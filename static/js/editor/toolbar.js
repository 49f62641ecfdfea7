// The toolbar's buttons: undo/redo, link mode, delete, zoom, layout, the lab's name, import and export.
import { importAndOpen } from "./api.js";
import { $, editable, root, setStatus, state } from "./context.js";
import { autoLayout, fit, zoomBy } from "./layout.js";
import { autosave, change, deleteSelection, redo, undo } from "./session.js";
import { setLinkMode } from "./wiring.js";

async function layout(cy) {
  if (!editable || cy.nodes().empty()) return;
  $("btn-layout").disabled = true;
  try {
    await autoLayout(cy, { elkUrl: root.dataset.elk });
    change((d) => {
      cy.nodes().forEach((el) => {
        const node = d.nodes[el.id()];
        if (node) node.ui = { ...(node.ui || {}), x: Math.round(el.position().x), y: Math.round(el.position().y) };
      });
    });
  } finally {
    $("btn-layout").disabled = false;
  }
}

function wireName() {
  $("lab-name").addEventListener("change", () => {
    const name = $("lab-name").value.trim();
    if (!name) { $("lab-name").value = state.doc.name; return; }
    change((d) => { d.name = name; });
    document.title = `${name} · Topolab`;
  });
  $("lab-name").addEventListener("keydown", (e) => { if (e.key === "Enter") e.target.blur(); });
}

function wireFiles() {
  for (const id of ["btn-export", "btn-export-clab"]) {
    $(id).addEventListener("click", async (e) => {
      $("export-menu").open = false;
      if (!autosave.busy) return; // saved: let the browser download
      e.preventDefault();
      await autosave.flush();
      window.location.assign($(id).href);
    });
  }
  $("btn-import").addEventListener("click", () => $("import-file").click());
  $("import-file").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    try {
      await importAndOpen(file);
    } catch (err) {
      setStatus("error", `Error: import failed: ${err.message}`);
    } finally {
      e.target.value = "";
    }
  });
}

export function wireToolbar(cy) {
  $("btn-undo").addEventListener("click", undo);
  $("btn-redo").addEventListener("click", redo);
  $("btn-link").addEventListener("click", () => setLinkMode(!state.linkMode));
  $("btn-delete").addEventListener("click", deleteSelection);
  $("btn-zoom-in").addEventListener("click", () => zoomBy(cy, 1.25));
  $("btn-zoom-out").addEventListener("click", () => zoomBy(cy, 0.8));
  $("btn-fit").addEventListener("click", () => fit(cy));
  $("btn-layout").addEventListener("click", () => layout(cy));
  wireName();
  wireFiles();
  window.addEventListener("beforeunload", (e) => {
    if (autosave.busy) { autosave.flush(); e.preventDefault(); e.returnValue = ""; }
  });
}
