// The instructions of the template a lab was started from, read-only, beside the canvas.
// Loaded by the editor page; does nothing for labs without a template. The HTML comes from the server,
// rendered from Markdown with raw HTML escaped and unsafe URLs dropped (webapp/classroom/markdown.py).
const root = document.getElementById("editor");
const sidebar = root && root.querySelector(".sidebar.right");

async function show() {
  const response = await fetch(`/api/labs/${root.dataset.lab}/instructions/`, {
    credentials: "same-origin", headers: { Accept: "application/json" },
  });
  if (!response.ok) return;
  const info = await response.json();
  if (!info.template) return;
  const section = document.createElement("details");
  section.className = "instructions";
  section.id = "lab-instructions";
  section.open = true;
  const summary = document.createElement("summary");
  summary.textContent = `Instructions · ${info.template} v${info.version}`;
  const body = document.createElement("div");
  body.className = "instructions-body markdown";
  body.innerHTML = info.html;
  section.append(summary, body);
  sidebar.prepend(section);
}

if (sidebar) show().catch((err) => console.warn("instructions:", err));
