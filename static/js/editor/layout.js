// View helpers: zoom, fit, and automatic layout (ELK, loaded only when first asked for).
import cytoscape from "cytoscape";

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

/** Register cytoscape-elk once; elkjs (1.6 MB) is fetched only here, never on page load. */
function loadElk(elkUrl, adapterUrl) {
  if (!elkReady) {
    elkReady = (async () => {
      await loadScript(elkUrl);
      await loadScript(adapterUrl);
      cytoscape.use(window.cytoscapeElk);
    })();
  }
  return elkReady;
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
export async function autoLayout(cy, { elkUrl, adapterUrl }) {
  const animate = cy.nodes().length <= 150;
  let options;
  try {
    await loadElk(elkUrl, adapterUrl);
    options = {
      name: "elk",
      fit: true,
      padding: 60,
      animate,
      animationDuration: 400,
      nodeDimensionsIncludeLabels: true,
      elk: {
        algorithm: "layered",
        "elk.direction": "DOWN",
        "elk.spacing.nodeNode": 50,
        "elk.layered.spacing.nodeNodeBetweenLayers": 70,
        "elk.edgeRouting": "POLYLINE",
      },
    };
  } catch (err) {
    console.warn("ELK unavailable, using breadthfirst:", err);
    options = { name: "breadthfirst", fit: true, padding: 60, spacingFactor: 1.2, animate, directed: false };
  }
  const layout = cy.layout(options);
  const done = layout.promiseOn("layoutstop");
  layout.run();
  await done;
}
