// The node kinds, as the server's registry describes them (netops.kinds, served by GET /api/kinds/), loaded once
// when the editor boots. Everything the canvas knows about a kind (palette, name prefix, panel sections,
// console and capture, node states, what a node name may be) comes from here, never from a copy in JS.
import { request } from "./api.js";

const registry = await request("GET", "/api/kinds/");

/** kind name -> { name, label, help, prefix, icon, keys, sections, interface_keys, interfaces, console, capture, ... },
 * in palette order. */
export const KINDS = Object.fromEntries(
  [...registry.kinds].sort((a, b) => a.palette - b.palette).map((kind) => [kind.name, kind]));

/** Every state a node is reported in (deploy.js colours nodes by them). */
export const NODE_STATES = registry.node_states;

/** What a node name must match (the server checks the same pattern). */
export const NODE_NAME_RE = new RegExp(registry.node_name_re);

/** Kinds whose nodes have a console (a shell in their namespace, or a VM's serial port). */
export const CONSOLE_KINDS = new Set(registry.kinds.filter((kind) => kind.console).map((kind) => kind.name));

/** Kinds whose interfaces can be captured on. */
export const CAPTURE_KINDS = new Set(registry.kinds.filter((kind) => kind.capture).map((kind) => kind.name));

/** Whether the properties panel shows `section` for a node of `kind`. */
export const hasSection = (kind, section) => Boolean(KINDS[kind] && KINDS[kind].sections.includes(section));

/** Whether the properties panel offers `key` on each interface of a node of `kind`. */
export const hasInterfaceKey = (kind, key) => Boolean(KINDS[kind] && KINDS[kind].interface_keys.includes(key));
