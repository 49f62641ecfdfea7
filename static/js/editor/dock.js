// The dock below the canvas: tabs of consoles, captures and the deploy log. It takes its own row of the editor's
// grid, so the canvas shrinks instead of being covered; its top edge drags to resize it, a button collapses it to
// its tab bar. One tab per key (a node's console, an interface's capture): opening it again shows the one there.
import { h } from "./dom.js";

const MIN_HEIGHT = 120;
const STORE = "topolab-dock-height";

export class Dock {
  constructor(container) {
    this.container = container;
    this.items = [];
    this.active = null;
    this.tabs = h("div", { class: "dock-tabs", role: "tablist" });
    this.bodies = h("div", { class: "dock-bodies" });
    this.collapseBtn = h("button", { class: "tool icon dock-collapse", type: "button", "aria-expanded": "true",
      title: "Collapse the dock", text: "\u25BE", onclick: () => this.collapse(!this.collapsed) });
    this.handle = h("div", { class: "dock-resize", role: "separator", tabindex: "0", "aria-orientation": "horizontal",
      "aria-label": "Resize the dock (drag, or arrow keys)", title: "Drag to resize" });
    this.root = h("section", { class: "term-dock", id: "term-dock", hidden: true, "aria-label": "Consoles and captures" },
      this.handle,
      h("div", { class: "dock-bar" }, this.tabs, this.collapseBtn),
      this.bodies);
    container.append(this.root);
    this.collapsed = false;
    this.setHeight(Number(localStorage.getItem(STORE)) || 0);
    this.wireResize();
  }

  /** Show the tab with this key, or make it: build(body) returns the view ({focus?, dispose?}). */
  open(key, title, kind, build) {
    const there = this.items.find((item) => item.key === key);
    if (there) {
      this.show(there);
      return there;
    }
    const body = h("div", { class: `dock-body ${kind}`, role: "tabpanel", "data-key": key });
    const tab = h("div", { class: "dock-tab", role: "tab", "data-kind": kind, "data-key": key, title },
      h("span", { class: "dock-tab-title", text: title }));
    const item = { key, tab, body, view: null };
    tab.addEventListener("click", () => this.show(item));
    tab.append(h("button", { class: "dock-close", type: "button", title: `Close ${title}`, "aria-label": `Close ${title}`,
      text: "\u2715", onclick: (e) => { e.stopPropagation(); this.remove(item); } }));
    this.tabs.append(tab);
    this.bodies.append(body);
    this.items.push(item);
    this.show(item);
    item.view = build(body) || {};
    if (item.view.focus) item.view.focus();
    return item;
  }

  find(key) { return this.items.find((item) => item.key === key) || null; }

  show(item) {
    for (const other of this.items) {
      other.body.hidden = other !== item;
      other.tab.setAttribute("aria-selected", String(other === item));
    }
    this.active = item;
    this.root.hidden = false;
    this.collapse(false);
    if (item.view && item.view.focus) requestAnimationFrame(() => item.view.focus());
  }

  remove(item) {
    if (item.view && item.view.dispose) item.view.dispose();
    item.tab.remove();
    item.body.remove();
    this.items = this.items.filter((x) => x !== item);
    if (this.active === item) {
      this.active = null;
      if (this.items.length) this.show(this.items[this.items.length - 1]);
      else this.root.hidden = true;
    }
  }

  collapse(on) {
    this.collapsed = on;
    this.root.classList.toggle("collapsed", on);
    this.collapseBtn.setAttribute("aria-expanded", String(!on));
    this.collapseBtn.textContent = on ? "\u25B4" : "\u25BE";
    this.collapseBtn.title = on ? "Expand the dock" : "Collapse the dock";
  }

  /** Height in px (0: the default); kept between 120 px and three quarters of the editor. */
  setHeight(px) {
    if (!px) { this.root.style.removeProperty("--dock-height"); return; }
    const max = Math.max(MIN_HEIGHT, this.container.getBoundingClientRect().height * 0.75);
    const height = Math.round(Math.min(max, Math.max(MIN_HEIGHT, px)));
    this.root.style.setProperty("--dock-height", `${height}px`);
    localStorage.setItem(STORE, String(height));
  }

  wireResize() {
    const height = () => this.root.getBoundingClientRect().height;
    this.handle.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      this.collapse(false);
      this.handle.setPointerCapture(e.pointerId);
      const startY = e.clientY;
      const start = height();
      const move = (ev) => this.setHeight(start + (startY - ev.clientY));
      const up = () => {
        this.handle.removeEventListener("pointermove", move);
        this.handle.removeEventListener("pointerup", up);
        this.handle.removeEventListener("pointercancel", up);
      };
      this.handle.addEventListener("pointermove", move);
      this.handle.addEventListener("pointerup", up);
      this.handle.addEventListener("pointercancel", up);
    });
    this.handle.addEventListener("keydown", (e) => {
      if (e.key === "ArrowUp") { e.preventDefault(); this.setHeight(height() + 24); }
      if (e.key === "ArrowDown") { e.preventDefault(); this.setHeight(height() - 24); }
    });
  }
}
