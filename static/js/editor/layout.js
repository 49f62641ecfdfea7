// View helpers: zoom, fit, and automatic layout (elkjs, loaded only when first asked for).
let elkReady = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}`));
    document.head.appendChild(script);
  });
}

/** elkjs (1.6 MB) is fetched only when a layout is first asked for, never on page load. */
function loadElk(elkUrl) {
  if (!elkReady) elkReady = loadScript(elkUrl).then(() => new window.ELK());
  return elkReady;
}

// Links have no direction, but a layered layout needs one: point every edge from the uplink side down to the
// hosts (external, router, switch, host/vm), so routers end up above their switches and hosts below.
const TIER = { external: 0, router: 1, bridge: 2, host: 3, vm: 3, unknown: 3 };

async function elkPositions(cy, elk) {
  const children = cy.nodes().map((n) => ({ id: n.id(), width: 70, height: 80 }));
  const edges = cy.edges().map((e) => {
    let [s, t] = [e.source(), e.target()];
    if ((TIER[s.data("kind")] ?? 3) > (TIER[t.data("kind")] ?? 3)) [s, t] = [t, s];
    return { id: e.id(), sources: [s.id()], targets: [t.id()] };
  });
  const graph = await elk.layout({
    id: "lab",
    layoutOptions: {
      "elk.algorithm": "layered",
      "elk.direction": "DOWN",
      "elk.spacing.nodeNode": "50",
      "elk.layered.spacing.nodeNodeBetweenLayers": "90",
      "elk.spacing.componentComponent": "80",
    },
    children,
    edges,
  });
  const positions = {};
  for (const c of graph.children) positions[c.id] = { x: c.x + c.width / 2, y: c.y + c.height / 2 };
  return positions;
}

export function zoomBy(cy, factor) {
  const rect = cy.container().getBoundingClientRect();
  cy.zoom({ level: cy.zoom() * factor, renderedPosition: { x: rect.width / 2, y: rect.height / 2 } });
}

export function fit(cy) {
  if (cy.elements().empty()) return;
  cy.fit(undefined, 60);
  if (cy.zoom() > 1.5) cy.zoom(1.5).center();
}

/** Arrange all nodes; resolves when positions are final (ELK layered, else a built-in fallback). */
export async function autoLayout(cy, { elkUrl }) {
  const animate = cy.nodes().length <= 150;
  let options;
  try {
    const positions = await elkPositions(cy, await loadElk(elkUrl));
    options = { name: "preset", positions: (node) => positions[node.id()], fit: true, padding: 60, animate, animationDuration: 350 };
  } catch (err) {
    console.warn("ELK unavailable, using breadthfirst:", err);
    options = { name: "breadthfirst", fit: true, padding: 60, spacingFactor: 1.2, animate, directed: false };
  }
  const layout = cy.layout(options);
  const done = layout.promiseOn("layoutstop");
  layout.run();
  await done;
  if (cy.zoom() > 1.2) cy.zoom(1.2).center();
}
