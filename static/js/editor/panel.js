// The properties panel: a form for the selected node or link, committed field by field on "change".
// Fields carry data-path (the document path they edit) so validation problems show next to them.
import { KINDS, hasInterfaceKey } from "./kinds.js";
import {
  interfacesOf, peerOf, renameInterface, renameNode, renameNodeInterface, splitEndpoint,
} from "./model.js";
import { h } from "./dom.js";
import { renderRouting } from "./routing-panel.js";
import { addressLab, ospfEverywhere } from "./autoaddress.js";

function field(label, input, path, hint) {
  const id = `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = input.id || id;
  return h("div", { class: "field", "data-path": path },
    h("label", { for: input.id, text: label }), input,
    hint ? h("div", { class: "hint", text: hint }) : null,
    h("div", { class: "field-error", role: "alert" }));
}

function textInput(value, onCommit, attrs = {}) {
  const input = h("input", { type: "text", value: value ?? "", spellcheck: "false", autocomplete: "off", ...attrs });
  input.addEventListener("change", () => onCommit(input.value.trim(), input));
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") input.blur(); });
  return input;
}

function numberInput(value, onCommit, attrs = {}) {
  const input = h("input", { type: "number", value: value ?? "", ...attrs });
  input.addEventListener("change", () => onCommit(input.value === "" ? null : Number(input.value), input));
  return input;
}

const ROUTE_LINE = /^\s*(\S+)\s+(?:via\s+)?(\S+)\s*$/;

function routesToText(routes) {
  return Array.isArray(routes) ? routes.map((r) => `${r.to ?? "?"} via ${r.via ?? "?"}`).join("\n") : "";
}

function textToRoutes(text) {
  const routes = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const m = line.match(ROUTE_LINE);
    routes.push(m ? { to: m[1], via: m[2] } : { to: line.trim(), via: "" });
  }
  return routes;
}

function addressText(address) {
  if (Array.isArray(address)) return address.join(", ");
  return address === "dhcp" ? "" : address ?? "";
}

function parseAddress(text) {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (!parts.length) return null;
  return parts.length === 1 ? parts[0] : parts;
}

export class Panel {
  constructor(root, { getDoc, getObserved = () => ({}), apply, onRenamed, onDelete, editable }) {
    this.root = root;
    this.getDoc = getDoc;
    this.getObserved = getObserved; // () => {node: {iface: leased address}}
    this.apply = apply; // (mutator(doc)) => null | error message
    this.onRenamed = onRenamed;
    this.onDelete = onDelete;
    this.editable = editable;
    this.images = [];
    this.uplinks = { bridges: [], nat: true }; // host bridges this lab may attach to (GET /api/labs/<pk>/uplinks/)
    this.selection = { nodes: [], links: [] };
    this.problems = [];
    this.translations = []; // (problem) => {path, message} | null: a server message in this panel's words
    this.externalMode = new Map(); // external node -> "bridge" | "nat" chosen before the document says so
    this.extras = []; // (root, selection, doc) => void: sections other modules add (actions.js: "Running lab")
  }

  /** Leased addresses arrived or went: show them unless the user is typing here. */
  refreshObserved() {
    if (this.selection.nodes.length === 1 && !this.root.contains(document.activeElement)) this.refresh();
  }

  setImages(images) {
    this.images = images;
    if (this.selection.nodes.length === 1) this.refresh();
  }

  setUplinks(uplinks) {
    this.uplinks = uplinks;
    if (this.selection.nodes.length === 1) this.refresh();
  }

  show(selection) {
    this.selection = selection;
    this.refresh();
  }

  refresh() {
    const doc = this.getDoc();
    const { nodes, links } = this.selection;
    this.root.replaceChildren();
    this.translations = [];
    if (nodes.length === 1 && !links.length && doc.nodes[nodes[0]]) this.renderNode(doc, nodes[0]);
    else if (links.length === 1 && !nodes.length && doc.links[links[0]]) this.renderLink(doc, links[0]);
    else if (nodes.length || links.length) this.renderMany(nodes.length, links.length);
    else this.renderLab(doc);
    for (const extra of this.extras) extra(this.root, this.selection, doc);
    // read-only viewers (a class's instructor) still look: buttons that change nothing say data-readonly-ok
    if (!this.editable) this.root.querySelectorAll("input, select, textarea, button:not([data-readonly-ok])").forEach((el) => { el.disabled = true; });
    this.setProblems(this.problems);
  }

  /** Show each problem under the field that edits its path (or its closest ancestor shown). */
  setProblems(problems) {
    this.problems = problems;
    const fields = [...this.root.querySelectorAll("[data-path]")];
    for (const f of fields) {
      f.classList.remove("invalid");
      const slot = f.querySelector(":scope > .field-error");
      if (slot) slot.textContent = "";
    }
    for (const raw of problems) {
      const p = this.translations.reduce((found, t) => found || t(raw), null) || raw;
      let best = null;
      for (const f of fields) {
        const path = f.dataset.path;
        if ((p.path === path || p.path.startsWith(`${path}.`)) && (!best || path.length > best.dataset.path.length)) best = f;
      }
      if (!best) continue;
      best.classList.add("invalid");
      const slot = best.querySelector(":scope > .field-error");
      if (slot) slot.textContent = slot.textContent ? `${slot.textContent}\n${p.message}` : p.message;
    }
  }

  commit(mutator, input) {
    const error = this.apply(mutator);
    const slot = input && input.closest(".field")?.querySelector(":scope > .field-error");
    if (error && slot) {
      slot.textContent = error;
      input.closest(".field").classList.add("invalid");
    }
    return !error;
  }

  header(title, subtitle, kind) {
    return h("div", { class: "panel-head" },
      kind ? h("img", { src: `${document.getElementById("editor").dataset.static}img/nodes/${kind}.svg`, alt: "", width: 28, height: 28 }) : null,
      h("div", {}, h("h2", { text: title }), subtitle ? h("div", { class: "muted", text: subtitle }) : null));
  }

  renderLab(doc) {
    const nodes = Object.keys(doc.nodes).length;
    const description = h("textarea", { class: "prose", rows: 3, maxlength: 2000, spellcheck: "true", "data-role": "lab-description" });
    description.value = typeof doc.description === "string" ? doc.description : "";
    description.addEventListener("change", () => this.commit((d) => {
      const value = description.value.trim();
      if (value) d.description = value; else delete d.description;
    }, description));
    this.root.append(
      this.header("Lab", `${nodes} node${nodes === 1 ? "" : "s"}, ${doc.links.length} link${doc.links.length === 1 ? "" : "s"}`),
      h("div", { class: "form-grid" }, field("Description", description, "description", "Shown in My labs")),
      h("div", { class: "panel-actions" },
        h("button", { class: "btn", type: "button", id: "btn-address-lab", text: "Address the lab",
          title: "Give every interface without an address one (/31 point-to-point, /24 per bridge, /32 loopbacks)",
          onclick: () => this.commit((d) => { addressLab(d, KINDS); }) }),
        h("button", { class: "btn", type: "button", id: "btn-ospf-everywhere", text: "OSPF everywhere",
          title: "OSPF area 0 on every router interface with an address",
          onclick: () => this.commit((d) => { ospfEverywhere(d, KINDS); }) })),
      h("p", { class: "muted", text: "Select a node or a link to edit its properties." }),
      h("h3", { text: "Shortcuts" }),
      this.shortcuts(),
    );
  }

  shortcuts() {
    const list = h("dl", { class: "shortcuts" });
    for (const [key, what] of [
      ["Drag from palette", "add a node"], ["L / Link button", "draw links"], ["Double-click", "rename a node"],
      ["Del", "delete selection"], ["Ctrl+Z", "undo"], ["Ctrl+Shift+Z", "redo"], ["Ctrl+A", "select all"],
      ["Esc", "clear / stop drawing"],
    ]) list.append(h("dt", { text: key }), h("dd", { text: what }));
    return list;
  }

  renderMany(nodes, links) {
    const parts = [];
    if (nodes) parts.push(`${nodes} node${nodes === 1 ? "" : "s"}`);
    if (links) parts.push(`${links} link${links === 1 ? "" : "s"}`);
    this.root.append(this.header("Selection", parts.join(", ")),
      h("button", { class: "btn btn-danger-outline", type: "button", text: "Delete selection", onclick: () => this.onDelete() }));
  }

  renderNode(doc, name) {
    const node = doc.nodes[name];
    const kind = node.kind;
    const info = KINDS[kind];
    const base = `nodes.${name}`;
    this.root.append(this.header(name, info ? info.label : `unknown kind ${kind}`, info ? kind : null));
    const form = h("div", { class: "form-grid" });
    this.root.append(form);

    const nameInput = textInput(name, (value, input) => {
      if (this.commit((d) => renameNode(d, name, value), input)) this.onRenamed(name, value);
    }, { maxlength: 32, "data-role": "node-name" });
    form.append(field("Name", nameInput, `${base}`));
    form.append(field("Description", textInput(node.description, (value) => this.commit((d) => {
      if (value) d.nodes[name].description = value; else delete d.nodes[name].description;
    }), { "data-role": "node-description" }), `${base}.description`));

    // the sections the node's kind declares (netops.kinds), in its order
    const sections = {
      vm: () => this.renderVm(form, node, name, base),
      interfaces: () => this.renderInterfaces(form, doc, node, name, base),
      routes: () => this.renderRoutes(form, node, name, base),
      nat: () => this.renderNat(form, doc, node, name, base),
      routing: () => renderRouting(this, form, doc, node, name, base),
      external: () => this.renderExternal(form, node, name, base),
      bridge: () => this.renderBridge(form, node, name, base),
      settings: () => this.renderSettings(form, info.settings, node, name, base),
    };
    for (const section of (info ? info.sections : [])) if (sections[section]) sections[section]();

    this.root.append(h("div", { class: "panel-actions" },
      h("button", { class: "btn btn-danger-outline", type: "button", text: `Delete ${name}`, onclick: () => this.onDelete() })));
  }

  renderInterfaces(form, doc, node, name, base) {
    const section = h("section", { class: "group", "data-path": `${base}.interfaces` },
      h("h3", { text: "Interfaces" }), h("div", { class: "field-error", role: "alert" }));
    const names = interfacesOf(doc, name);
    if (!names.length) section.append(h("p", { class: "muted", text: "Draw a link to give this node an interface." }));
    for (const iface of names) {
      const cfg = (node.interfaces && node.interfaces[iface]) || {};
      const path = `${base}.interfaces.${iface}`;
      const peer = peerOf(doc, name, iface);
      const ifname = textInput(iface, (value, input) => {
        if (!value || value === iface) { input.value = iface; return; }
        if (this.commit((d) => renameNodeInterface(d, name, iface, value), input)) this.refresh();
        else input.value = iface;
      }, { class: "mono iface-name", maxlength: 15, "data-role": "iface-name", "data-iface": iface,
        "aria-label": `Name of ${name}'s interface ${iface}`, title: "Rename; the name of another interface swaps the two" });
      const box = h("div", { class: "iface", "data-path": path },
        h("div", { class: "iface-head field" }, ifname,
          h("span", { class: "muted", text: peer ? `→ ${peer}` : "not wired" }),
          h("div", { class: "field-error", role: "alert" })));
      const setCfg = (mutate) => (d) => {
        const n = d.nodes[name];
        if (!n.interfaces || typeof n.interfaces !== "object") n.interfaces = {};
        const c = n.interfaces[iface] || (n.interfaces[iface] = {});
        mutate(c);
      };
      const dhcp = cfg.address === "dhcp";
      const address = textInput(addressText(cfg.address), (value, input) => {
        this.commit(setCfg((c) => { const a = parseAddress(value); if (a) c.address = a; else delete c.address; }), input);
      }, { placeholder: "e.g. 10.0.1.1/24", "data-iface": iface, "data-role": "address" });
      address.disabled = dhcp;
      const dhcpBox = h("input", { type: "checkbox", "data-role": "dhcp", "data-iface": iface });
      dhcpBox.checked = dhcp;
      dhcpBox.addEventListener("change", () => {
        address.disabled = dhcpBox.checked;
        this.commit(setCfg((c) => {
          if (dhcpBox.checked) c.address = "dhcp";
          else { const a = parseAddress(address.value); if (a) c.address = a; else delete c.address; }
        }));
      });
      const addressField = field("Address", address, `${path}.address`);
      addressField.append(h("label", { class: "check" }, dhcpBox, " DHCP client"));
      const leased = dhcp && (this.getObserved()[name] || {})[iface];
      if (leased) addressField.append(h("div", { class: "hint leased", "data-role": "leased", text: `Leased: ${leased}` }));
      box.append(addressField);
      if (hasInterfaceKey(node.kind, "dhcp_server")) {
        const range = cfg.dhcp_server && cfg.dhcp_server.range;
        box.append(field("DHCP server range", textInput(range, (value, input) => this.commit(setCfg((c) => {
          if (value) c.dhcp_server = { ...(c.dhcp_server || {}), range: value }; else delete c.dhcp_server;
        }), input), { placeholder: "e.g. 10.0.1.100-10.0.1.150", "data-role": "dhcp-range" }), `${path}.dhcp_server`));
      }
      if (hasInterfaceKey(node.kind, "mac")) {
        box.append(field("MAC", textInput(cfg.mac, (value, input) => this.commit(setCfg((c) => {
          if (value) c.mac = value.toLowerCase(); else delete c.mac;
        }), input), { placeholder: "automatic" }), `${path}.mac`));
      }
      section.append(box);
    }
    form.append(section);
  }

  renderRoutes(form, node, name, base) {
    const area = h("textarea", { rows: 3, spellcheck: "false", placeholder: "e.g. default via 10.0.1.254\n10.2.0.0/16 via 10.0.1.1", "data-role": "routes" });
    area.value = routesToText(node.routes);
    area.addEventListener("change", () => this.commit((d) => {
      const routes = textToRoutes(area.value);
      if (routes.length) d.nodes[name].routes = routes; else delete d.nodes[name].routes;
    }, area));
    form.append(field("Routes", area, `${base}.routes`, "One per line: destination via gateway"));
  }

  /** The kind's plain settings (netops.kinds `Kind.settings`): a checkbox, a number or a text field each. */
  renderSettings(form, settings, node, name, base) {
    for (const s of settings || []) {
      const set = (value, input) => this.commit((d) => {
        if (value === null || value === "" || value === false) delete d.nodes[name][s.key]; else d.nodes[name][s.key] = value;
      }, input);
      let input;
      if (s.type === "bool") {
        const box = h("input", { type: "checkbox", "data-role": `setting-${s.key}` });
        box.checked = node[s.key] === true;
        box.addEventListener("change", () => set(box.checked, box));
        input = h("label", { class: "check" }, box, ` ${s.label}`);
      } else if (s.type === "int") {
        input = numberInput(node[s.key], set, { min: s.min ?? undefined, max: s.max ?? undefined, "data-role": `setting-${s.key}` });
      } else {
        input = textInput(node[s.key], set, { "data-role": `setting-${s.key}` });
      }
      form.append(field(s.label, input, `${base}.${s.key}`, s.help || undefined));
    }
  }

  renderBridge(form, node, name, base) {
    const box = h("input", { type: "checkbox", "data-role": "multicast-snooping" });
    box.checked = node.multicast_snooping === true;
    box.addEventListener("change", () => this.commit((d) => {
      if (box.checked) d.nodes[name].multicast_snooping = true; else delete d.nodes[name].multicast_snooping;
    }));
    form.append(field("Multicast", h("label", { class: "check" }, box, " IGMP/MLD snooping"),
      `${base}.multicast_snooping`,
      "Off: multicast reaches every port. On: only ports that joined the group (needs a querier in the lab)"));
  }

  renderNat(form, doc, node, name, base) {
    const section = h("section", { class: "group", "data-path": `${base}.nat` }, h("h3", { text: "NAT" }),
      h("p", { class: "hint", text: "Masquerade (SNAT) everything leaving these interfaces" }),
      h("div", { class: "field-error", role: "alert" }));
    const current = new Set((node.nat && Array.isArray(node.nat.masquerade)) ? node.nat.masquerade : []);
    for (const iface of interfacesOf(doc, name)) {
      const box = h("input", { type: "checkbox", "data-role": "masquerade", "data-iface": iface });
      box.checked = current.has(iface);
      box.addEventListener("change", () => this.commit((d) => {
        const n = d.nodes[name];
        const set = new Set((n.nat && Array.isArray(n.nat.masquerade)) ? n.nat.masquerade : []);
        if (box.checked) set.add(iface); else set.delete(iface);
        if (set.size) n.nat = { masquerade: interfacesOf(d, name).filter((i) => set.has(i)) }; else delete n.nat;
      }));
      section.append(h("label", { class: "check" }, box, " ", h("span", { class: "mono", text: iface })));
    }
    form.append(section);
  }

  renderVm(form, node, name, base) {
    const select = h("select", { "data-role": "image" });
    const names = this.images.map((i) => i.name);
    if (node.image && !names.includes(node.image)) names.unshift(node.image);
    select.append(h("option", { value: "", text: names.length ? "— choose an image —" : "no images installed" }));
    for (const n of names) select.append(h("option", { value: n, text: n }));
    select.value = node.image || "";
    select.addEventListener("change", () => this.commit((d) => {
      if (select.value) d.nodes[name].image = select.value; else delete d.nodes[name].image;
    }, select));
    form.append(field("Image", select, `${base}.image`));
    const row = h("div", { class: "row" });
    const setNum = (key) => (value, input) => this.commit((d) => {
      if (value === null) delete d.nodes[name][key]; else d.nodes[name][key] = value;
    }, input);
    row.append(field("Memory (MiB)", numberInput(node.memory, setNum("memory"), { min: 16, step: 16, placeholder: "image default" }), `${base}.memory`));
    row.append(field("CPUs", numberInput(node.cpus, setNum("cpus"), { min: 1, max: 16, placeholder: "default: 1" }), `${base}.cpus`));
    form.append(row);
  }

  /** How the lab reaches the host's network. Nothing is chosen until the user chooses (the document says neither). */
  renderExternal(form, node, name, base) {
    const mode = node.nat === true ? "nat" : node.bridge !== undefined ? "bridge" : this.externalMode.get(name) || null;
    const group = `ext-${name}`;
    const bridgeRadio = h("input", { type: "radio", name: group, value: "bridge", "data-role": "external-bridge" });
    const natRadio = h("input", { type: "radio", name: group, value: "nat", "data-role": "external-nat" });
    bridgeRadio.checked = mode === bridgeRadio.value; // the external's mode (a host bridge), not a node kind
    natRadio.checked = mode === "nat";
    const bridge = textInput(node.bridge, (value, input) => this.commit((d) => {
      const n = d.nodes[name];
      delete n.nat; delete n.address;
      if (value) n.bridge = value; else delete n.bridge;
    }, input), { placeholder: "e.g. br-ex", maxlength: 15, "data-role": "external-bridge-name", list: `uplinks-${name}` });
    // the bridges the operator allows this lab, offered as a list (typing another name shows the problem)
    const allowed = this.uplinks.bridges || [];
    const choices = h("datalist", { id: `uplinks-${name}`, "data-role": "uplink-bridges" },
      ...allowed.map((b) => h("option", { value: b, text: b })));
    const address = textInput(node.address, (value, input) => this.commit((d) => {
      const n = d.nodes[name];
      delete n.bridge; n.nat = true;
      if (value) n.address = value; else delete n.address;
    }, input), { placeholder: "e.g. 203.0.113.1/24", "data-role": "external-address" });
    const bridgeField = field("Host bridge", bridge, `${base}.bridge`,
      allowed.length ? `Allowed on this server: ${allowed.join(", ")}` : "No host bridge is allowed for this lab; use NAT");
    bridgeField.append(choices);
    const addressField = field("Gateway address (host side)", address, `${base}.address`,
      "The host's address on the lab's side; the lab's router uses it as its gateway");
    const connection = `${base}.connection`;
    const toggle = () => { bridgeField.hidden = !bridgeRadio.checked; addressField.hidden = !natRadio.checked; };
    const switchMode = () => {
      this.externalMode.set(name, natRadio.checked ? "nat" : "bridge");
      toggle();
      this.commit((d) => {
        const n = d.nodes[name];
        if (natRadio.checked) { delete n.bridge; n.nat = true; if (address.value.trim()) n.address = address.value.trim(); }
        else { delete n.nat; delete n.address; if (bridge.value.trim()) n.bridge = bridge.value.trim(); }
      });
      this.setProblems(this.problems);
    };
    bridgeRadio.addEventListener("change", switchMode);
    natRadio.addEventListener("change", switchMode);
    // the checker's words are the document's ("bridge: ... or nat: true"); say them as the form's
    this.translations.push((p) => {
      if (p.path === base && /needs either bridge/.test(p.message)) {
        return bridgeRadio.checked
          ? { path: `${base}.bridge`, message: "Enter the name of a bridge that exists on the lab host" }
          : { path: connection, message: `Choose how ${name} reaches the host's network: a host bridge or NAT` };
      }
      if (p.path === `${base}.address` && /required with nat/.test(p.message)) {
        return { path: p.path, message: "Enter the host-side gateway address, e.g. 203.0.113.1/24" };
      }
      return null;
    });
    form.append(h("section", { class: "group", "data-path": connection }, h("h3", { text: "Connection" }),
      h("label", { class: "check" }, bridgeRadio, " Attach to a host bridge"),
      h("label", { class: "check" }, natRadio, " NAT through the host"),
      h("div", { class: "field-error", role: "alert" })), bridgeField, addressField);
    toggle();
  }

  renderLink(doc, index) {
    const link = doc.links[index];
    const base = `links.${index}`;
    const ends = link.endpoints.map((e) => splitEndpoint(e));
    this.root.append(this.header("Link", `${link.endpoints[0]} ↔ ${link.endpoints[1]}`));
    const form = h("div", { class: "form-grid" });
    this.root.append(form);
    ends.forEach(([node, iface], end) => {
      const path = `${base}.endpoints.${end}`;
      if (iface === null) {
        form.append(h("div", { class: "field", "data-path": path }, h("label", { text: `End ${end + 1}` }),
          h("div", { class: "static mono", text: node }), h("div", { class: "field-error", role: "alert" })));
        return;
      }
      const input = textInput(iface, (value, el) => {
        if (!this.commit((d) => renameInterface(d, index, end, value), el)) el.value = iface;
      }, { maxlength: 15, "data-role": `endpoint-${end}` });
      form.append(field(`${node} interface`, input, path));
    });
    form.append(h("h3", { text: "Link conditions" }));
    const row = h("div", { class: "row two" });
    for (const [key, label, placeholder] of [["delay", "Delay", "e.g. 20ms"], ["jitter", "Jitter", "e.g. 5ms"], ["loss", "Loss", "e.g. 1%"], ["rate", "Rate", "e.g. 10mbit"]]) {
      row.append(field(label, textInput(link[key], (value, input) => this.commit((d) => {
        if (value) d.links[index][key] = value; else delete d.links[index][key];
      }, input), { placeholder, "data-role": key }), `${base}.${key}`));
    }
    form.append(row);
    this.root.append(h("div", { class: "panel-actions" },
      h("button", { class: "btn btn-danger-outline", type: "button", text: "Delete link", onclick: () => this.onDelete() })));
  }
}
