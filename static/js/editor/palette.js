// The palette of node kinds: HTML5 drag onto the canvas (or click to add in the middle of the view).
import { KINDS } from "./kinds.js";
import { modelPosition } from "./canvas.js";

const MIME = "application/x-topolab-kind";

export function createPalette(root, { iconBase, canvas, getCy, onAdd, enabled }) {
  for (const [kind, info] of Object.entries(KINDS)) {
    const item = document.createElement("button");
    item.type = "button";
    item.className = "palette-item";
    item.draggable = enabled;
    item.dataset.kind = kind;
    item.title = `${info.help}. Drag onto the canvas, or click to add.`;
    item.innerHTML = `<img src="${iconBase}${kind}.svg" alt="" width="32" height="32"><span class="name">${info.label}</span><span class="prefix mono">${info.prefix}1</span>`;
    item.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData(MIME, kind);
      event.dataTransfer.setData("text/plain", kind);
      event.dataTransfer.effectAllowed = "copy";
    });
    item.addEventListener("click", () => {
      if (!enabled) return;
      const cy = getCy();
      const ext = cy.extent();
      const jitter = () => (Math.random() - 0.5) * 60;
      onAdd(kind, { x: (ext.x1 + ext.x2) / 2 + jitter(), y: (ext.y1 + ext.y2) / 2 + jitter() });
    });
    root.appendChild(item);
  }

  canvas.addEventListener("dragover", (event) => {
    if (!enabled) return;
    const types = event.dataTransfer.types;
    if (types.includes(MIME) || types.includes("text/plain")) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      canvas.classList.add("drop-target");
    }
  });
  canvas.addEventListener("dragleave", () => canvas.classList.remove("drop-target"));
  canvas.addEventListener("drop", (event) => {
    canvas.classList.remove("drop-target");
    const kind = event.dataTransfer.getData(MIME) || event.dataTransfer.getData("text/plain");
    if (!enabled || !KINDS[kind]) return;
    event.preventDefault();
    onAdd(kind, modelPosition(getCy(), event.clientX, event.clientY));
  });
}
