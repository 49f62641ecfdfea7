// Debounced saving: one request in flight at most; changes made meanwhile are saved right after it.

export class Autosave {
  constructor({ delay = 800, save, onState }) {
    this.delay = delay;
    this.save = save; // async () => "saved" | "conflict"
    this.onState = onState; // (state, text) => void
    this.timer = null;
    this.inFlight = null;
    this.pending = false;
    this.dirty = false;
    this.retryDelay = 5000;
  }

  schedule() {
    this.dirty = true;
    this.onState("dirty", "Unsaved changes");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), this.delay);
  }

  async flush() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.inFlight) {
      this.pending = true;
      return this.inFlight;
    }
    if (!this.dirty) return undefined;
    this.dirty = false;
    this.onState("saving", "Saving…");
    this.inFlight = (async () => {
      try {
        const outcome = await this.save();
        if (outcome === "conflict") this.onState("conflict", "Conflict: reloaded newer version");
        else if (!this.dirty) this.onState("saved", "Saved");
      } catch (err) {
        this.dirty = true; // keep the change; the next edit (or the retry) saves it
        this.onState("error", `Error: ${err.message || err}`);
        // the server or the network failed (not our request): try again by itself in a while
        if (!err.status || err.status >= 500) this.timer = setTimeout(() => this.flush(), this.retryDelay);
      } finally {
        this.inFlight = null;
        if (this.pending) {
          this.pending = false;
          this.timer = setTimeout(() => this.flush(), 0);
        }
      }
    })();
    return this.inFlight;
  }

  get busy() { return this.dirty || Boolean(this.inFlight); }
}
