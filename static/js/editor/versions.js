// "deployed: version N, editing: version M" beside the save status, shown only while the running lab is not the
// document being edited (a deploy applies the edits). The deployed version comes with the lab (GET
// /api/labs/<pk>/ `deployed_version`) and then from the lab's events: a deploy's run.started carries the version
// it applies; a destroy, or the health check finding the lab gone (lab.undeployed), clears it.
// The editing version is read with `getEditing()` whenever the save status beside it changes (a save, a conflict).
export function initVersions(anchor, getEditing = () => null) {
  const el = document.createElement("span");
  el.id = "deploy-versions";
  el.className = "deploy-versions";
  el.setAttribute("role", "status");
  el.hidden = true;
  anchor.after(el);
  const state = { deployed: null, editing: null };

  function render() {
    const differ = state.deployed !== null && state.editing !== null && state.deployed !== state.editing;
    el.hidden = !differ;
    el.textContent = differ ? `deployed: version ${state.deployed}, editing: version ${state.editing}` : "";
    el.title = differ ? "The running lab is an older version of this document; Deploy applies the difference" : "";
  }

  new MutationObserver(() => api.editing(getEditing())).observe(anchor, { childList: true, characterData: true,
    subtree: true });

  const api = {
    editing(version) { state.editing = version ?? null; render(); },
    deployed(version) { state.deployed = version ?? null; render(); },
    event(e) {
      if (e.type === "run.started" && e.kind === "deploy" && e.version) api.deployed(e.version);
      else if ((e.type === "run.finished" && e.kind === "destroy") || e.type === "lab.undeployed") api.deployed(null);
    },
    state,
  };
  api.editing(getEditing());
  return api;
}
