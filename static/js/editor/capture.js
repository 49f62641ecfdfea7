// A capture tab: starts a capture (REST), shows its packets live (/ws/labs/<pk>/captures/<id>/), stops it,
// and links the .pcap download. Rows are keyed by packet number, so a backlog and live rows never repeat.
import { request } from "./api.js";
import { h, wsUrl } from "./dom.js";

const MAX_ROWS = 2000; // the browser keeps the newest rows; the file keeps everything

function size(bytes) {
  return bytes < 1024 ? `${bytes} B` : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 1048576).toFixed(1)} MiB`;
}

export class CaptureView {
  constructor(labPk, target, body) {
    this.labPk = labPk;
    this.target = target;
    this.capture = null;
    this.socket = null;
    this.last = 0;
    this.filter = h("input", { class: "capture-filter mono", type: "text", placeholder: "BPF filter, e.g. icmp or port 53",
      maxlength: "256", spellcheck: "false", "aria-label": "Capture filter" });
    this.filter.addEventListener("keydown", (e) => { if (e.key === "Enter") this.start(); });
    this.startBtn = h("button", { class: "btn btn-primary capture-start", type: "button", text: "\u25B6 Start",
      onclick: () => this.start() });
    this.stopBtn = h("button", { class: "btn capture-stop", type: "button", text: "\u25A0 Stop", disabled: true,
      onclick: () => this.stop() });
    this.download = h("a", { class: "btn capture-download", hidden: true, text: "\u2B07 .pcap", download: "" });
    this.status = h("span", { class: "capture-status", role: "status", text: "Not started" });
    this.rows = h("tbody");
    this.table = h("table", { class: "packet-list mono" },
      h("thead", {}, h("tr", {}, ...["No.", "Time", "Source", "Destination", "Protocol", "Length", "Info"]
        .map((t) => h("th", { text: t })))), this.rows);
    body.append(h("div", { class: "capture-bar" }, this.filter, this.startBtn, this.stopBtn, this.download, this.status),
      h("div", { class: "packet-scroll" }, this.table));
  }

  focus() { if (!this.capture) this.filter.focus(); }

  setStatus(text, state) {
    this.status.textContent = text;
    this.status.dataset.state = state || "";
  }

  async start() {
    if (this.capture && this.capture.status === "running") return;
    this.startBtn.disabled = true;
    const body = this.target.link !== undefined ? { link: this.target.link }
      : { node: this.target.node, interface: this.target.interface };
    body.filter = this.filter.value;
    this.setStatus("Starting…", "starting");
    try {
      this.capture = await request("POST", `/api/labs/${this.labPk}/captures/`, body);
    } catch (err) {
      this.setStatus(`Error: ${err.message}`, "error");
      this.startBtn.disabled = false;
      return;
    }
    this.rows.replaceChildren();
    this.last = 0;
    this.filter.disabled = true;
    this.stopBtn.disabled = false;
    this.download.href = this.capture.download;
    this.download.hidden = false;
    this.setStatus(`Capturing on ${this.capture.label}`, "running");
    this.listen();
  }

  listen() {
    this.socket = new WebSocket(wsUrl(this.capture.live));
    this.socket.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "packets") this.addRows(msg.packets);
      else if (msg.type === "state") this.onState(msg);
    });
  }

  addRows(packets) {
    const fragment = document.createDocumentFragment();
    for (const p of packets) {
      if (p.no <= this.last) continue; // already shown (backlog and live overlap)
      this.last = p.no;
      const kind = p.info.startsWith("echo request") ? "request" : p.info.startsWith("echo reply") ? "reply" : "";
      fragment.append(h("tr", { "data-no": p.no, "data-proto": p.proto, "data-kind": kind },
        h("td", { text: p.no }), h("td", { text: p.time.toFixed(6) }), h("td", { text: p.src }),
        h("td", { text: p.dst }), h("td", { text: p.proto }), h("td", { text: p.len }), h("td", { text: p.info })));
    }
    const scroller = this.table.parentElement;
    const atBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 4;
    this.rows.append(fragment);
    while (this.rows.childElementCount > MAX_ROWS) this.rows.firstElementChild.remove();
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  onState(msg) {
    if (msg.status === "running") {
      this.setStatus(`Capturing on ${this.capture.label}: ${msg.packets} packets, ${size(msg.size)}`, "running");
    } else if (msg.status === "stopped" || msg.status === "failed") {
      this.setStatus(`Stopped: ${msg.packets ?? 0} packets, ${size(msg.size || 0)}${msg.message ? ` (${msg.message})` : ""}`,
        msg.status);
      this.finished();
    } else if (msg.status === "refused") {
      this.setStatus(`Error: ${msg.message}`, "error");
    }
  }

  finished() {
    this.stopBtn.disabled = true;
    this.startBtn.disabled = false;
    this.filter.disabled = false;
    if (this.capture) this.capture.status = "stopped";
  }

  async stop() {
    if (!this.capture) return;
    this.stopBtn.disabled = true;
    try {
      const cap = await request("POST", `/api/labs/${this.labPk}/captures/${this.capture.id}/stop/`);
      this.onState({ status: cap.status, size: cap.size, packets: cap.packets, message: cap.message });
    } catch (err) {
      this.setStatus(`Error: ${err.message}`, "error");
      this.stopBtn.disabled = false;
    }
  }

  dispose() {
    if (this.capture && this.capture.status === "running") this.stop();
    if (this.socket) this.socket.close();
  }
}
