// "My labs": create, rename, duplicate, delete and import, through the REST API; the table is server-rendered.
import { importAndOpen, labs } from "./api.js";

const message = document.getElementById("labs-message");

function say(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
  message.hidden = false;
}

function describe(err) {
  return err && err.message ? err.message : String(err);
}

document.getElementById("create-lab").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = document.getElementById("new-lab-name").value.trim();
  if (!name) return;
  try {
    const lab = await labs.create(name);
    window.location.assign(`/labs/${lab.id}/`);
  } catch (err) {
    say(`Could not create the lab: ${describe(err)}`, true);
  }
});

document.getElementById("import-lab-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  try {
    await importAndOpen(file);
  } catch (err) {
    say(`Could not import ${file.name}: ${describe(err)}`, true);
  } finally {
    event.target.value = "";
  }
});

const table = document.getElementById("labs-table");
if (table) {
  table.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const row = button.closest("tr");
    const id = row.dataset.lab;
    const name = row.dataset.name;
    try {
      if (button.dataset.action === "rename") {
        const newName = window.prompt("New name of the lab", name);
        if (!newName || newName.trim() === name) return;
        await labs.patch(id, { version: Number(row.dataset.version), name: newName.trim() });
      } else if (button.dataset.action === "duplicate") {
        await labs.duplicate(id, `${name} copy`);
      } else if (button.dataset.action === "delete") {
        if (!window.confirm(`Delete the lab "${name}"? This cannot be undone.`)) return;
        await labs.remove(id);
      }
      window.location.reload();
    } catch (err) {
      say(describe(err), true);
    }
  });
}
