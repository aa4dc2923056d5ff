// diffariff studio: the page's logic. It talks to the server's JSON API (one browser session per
// tab, kept in sessionStorage) and draws lanes and candidates on the timeline (timeline.js); jobs.js
// queues generation and edit jobs and follows their progress. Errors are one line in #error.
"use strict";

const $ = (id) => document.getElementById(id);
const SESSION_KEY = "diffariff-studio-session";

const Studio = {
  sid: null,
  state: null,
  info: null,
  selected: null,    // lane id being edited
  audition: null,    // candidate id heard with the lanes
  job: null,
  settingsApplied: false,

  base() {
    return `/api/s/${this.sid}`;
  },

  async api(path, opts = {}) {
    let res;
    try {
      res = await fetch(path, opts);
    } catch (e) {
      throw new Error("the studio server cannot be reached (is `diffariff studio` still running?)");
    }
    const type = res.headers.get("content-type") || "";
    const body = type.includes("application/json") ? await res.json() : null;
    if (!res.ok) throw new Error((body && body.error) || `request failed (${res.status})`);
    return body;
  },

  showError(err) {
    const el = $("error");
    el.textContent = String((err && err.message) || err).split("\n")[0];
    el.hidden = false;
  },

  clearError() {
    $("error").hidden = true;
  },

  showNotes(notes) {
    const el = $("notice");
    el.textContent = (notes || []).join(" · ");
    el.hidden = !(notes && notes.length);
  },

  // Run an async action; any error becomes the one-line message of the page.
  async guard(fn) {
    this.clearError();
    try {
      await fn();
    } catch (e) {
      this.showError(e);
    }
  },

  async init() {
    Timeline.init($("timeline"), $("playhead"), $("clock"));
    Timeline.onSelect = (key) => {
      if (key.startsWith("L")) this.select(key);
    };
    Timeline.onRegion = (r) => {
      if (!r || !r.key.startsWith("L")) return;
      $("region-start").value = r.start.toFixed(2);
      $("region-end").value = r.end.toFixed(2);
    };
    this.bind();
    await this.guard(async () => {
      await this.connect();
      await this.refreshInfo();
    });
  },

  async connect() {
    const saved = sessionStorage.getItem(SESSION_KEY);
    if (saved) {
      try {
        this.sid = saved;
        this.setState(await this.api(this.base()));
        return;
      } catch (e) {
        sessionStorage.removeItem(SESSION_KEY);
      }
    }
    const st = await this.api("/api/session", {method: "POST"});
    sessionStorage.setItem(SESSION_KEY, st.session);
    this.sid = st.session;
    this.setState(st);
  },

  async refreshInfo() {
    this.info = await this.api("/api/info");
    const st = $("model-status");
    const m = this.info.model;
    st.textContent = m === "ready" ? `model ready (${this.info.bundle.split("/").pop()})`
      : m === "failed" ? `model failed to load: ${this.info.load_error}` : "loading the model…";
    st.dataset.state = m;
    const sel = $("sampler");
    if (m === "ready" && sel.options.length <= 1) {
      for (const s of this.info.samplers) {
        const steps = s === "consistency" ? this.info.default_steps.consistency : this.info.default_steps.edm;
        sel.add(new Option(`${s} (${steps} steps)`, s));
      }
      if (this.state && this.state.settings) this.applySettings(this.state.settings);
    }
    if (m === "loading") setTimeout(() => this.guard(() => this.refreshInfo()), 1000);
  },

  bind() {
    $("start-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.guard(() => this.start());
    });
    $("open-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.guard(() => this.openSession());
    });
    $("add-files").addEventListener("change", () => this.guard(() => this.addFiles()));
    $("play").addEventListener("click", () => {
      $("play").textContent = Timeline.toggle() ? "Pause" : "Play";
    });
    $("stop").addEventListener("click", () => {
      Timeline.stop();
      $("play").textContent = "Play";
    });
    $("save-session").addEventListener("click", () => this.guard(() => this.saveSession()));
    $("new-track").addEventListener("click", () => {
      $("start-panel").hidden = false;
      $("start-panel").scrollIntoView();
    });
    $("discard-all").addEventListener("click", () => this.guard(async () => {
      this.setState(await this.api(`${this.base()}/candidates`, {method: "DELETE"}));
    }));
    $("gen-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.guard(() => this.submitJob("generate", $("gen-form")));
    });
    for (const btn of document.querySelectorAll("#edit-form button[data-op]")) {
      btn.addEventListener("click", () => this.guard(() => this.submitJob("edit", $("edit-form"), btn.dataset.op)));
    }
    $("cancel").addEventListener("click", () => this.guard(async () => {
      if (this.job) await this.api(`${this.base()}/jobs/${this.job.id}/cancel`, {method: "POST"});
    }));
    for (const id of ["region-start", "region-end"]) {
      $(id).addEventListener("change", () => {
        Timeline.setRegion(this.selected, parseFloat($("region-start").value), parseFloat($("region-end").value));
      });
    }
  },

  // ------------------------------------------------------------------------------ the track
  async start() {
    const form = new FormData($("start-form"));
    if (form.get("mode") === "silence") form.delete("files");
    const st = await this.api(`${this.base()}/start`, {method: "POST", body: form});
    Timeline.stop();
    this.selected = null;
    this.setState(st);
    this.showNotes(st.notes);
  },

  async addFiles() {
    const input = $("add-files");
    const form = new FormData();
    for (const f of input.files) form.append("files", f);
    input.value = "";
    const st = await this.api(`${this.base()}/lanes`, {method: "POST", body: form});
    this.setState(st);
    this.showNotes(st.notes);
  },

  async openSession() {
    const form = new FormData($("open-form"));
    const st = await this.api(`${this.base()}/open`, {method: "POST", body: form});
    Timeline.stop();
    this.selected = null;
    this.settingsApplied = false;
    this.setState(st);
    this.showNotes(st.notes);
  },

  async saveSession() {
    await this.api(`${this.base()}/settings`, {
      method: "PUT", headers: {"Content-Type": "application/json"}, body: JSON.stringify(this.collectSettings()),
    });
    window.location.href = `${this.base()}/session.zip`;
  },

  collectSettings() {
    const out = {};
    for (const id of ["gen-form", "sampling-form", "edit-form"]) {
      for (const el of $(id).elements) {
        if (!el.name || el.type === "file" || el.type === "button" || el.type === "submit") continue;
        out[el.name] = el.type === "checkbox" ? (el.checked ? "1" : "0") : el.value;
      }
    }
    return out;
  },

  applySettings(settings) {
    for (const id of ["gen-form", "sampling-form", "edit-form"]) {
      for (const el of $(id).elements) {
        if (!el.name || el.type === "file" || !(el.name in settings)) continue;
        if (el.type === "checkbox") el.checked = ["1", "true", "on"].includes(String(settings[el.name]));
        else el.value = settings[el.name];
      }
    }
    this.settingsApplied = true;
  },

  async patchLane(id, change) {
    this.setState(await this.api(`${this.base()}/lanes/${id}`, {
      method: "PATCH", headers: {"Content-Type": "application/json"}, body: JSON.stringify(change),
    }));
  },

  select(laneId) {
    this.selected = laneId;
    const lane = this.state.lanes.find((l) => l.id === laneId);
    $("edit-lane-name").textContent = lane ? lane.name : "click a lane to select it";
    document.querySelectorAll(".row-item").forEach((row) => row.classList.toggle("selected", row.dataset.key === laneId));
    if (Timeline.region && Timeline.region.key !== laneId) {
      Timeline.setRegion(null);
      $("region-start").value = "";
      $("region-end").value = "";
    }
  },

  // ------------------------------------------------------------------------------ rendering
  setState(st) {
    this.state = st;
    this.sid = st.session;
    const hasTrack = Boolean(st.samples);
    $("start-panel").hidden = hasTrack;
    $("track-panel").hidden = !hasTrack;
    $("controls").hidden = !hasTrack;
    if (!this.settingsApplied && st.settings && Object.keys(st.settings).length && this.info) {
      this.applySettings(st.settings);
    }
    if (this.selected && !st.lanes.some((l) => l.id === this.selected)) this.selected = null;
    if (this.audition && !st.candidates.some((c) => c.id === this.audition)) this.audition = null;
    Timeline.setDuration(st.seconds);
    $("mix-wav").href = `${this.base()}/mix/download?format=wav`;
    $("mix-flac").href = `${this.base()}/mix/download?format=flac`;
    this.renderRows();
    if (!this.job && st.jobs && st.jobs.length) this.follow(st.jobs[st.jobs.length - 1]);
  },

  renderRows() {
    const st = this.state;
    const keys = new Set([...st.lanes.map((l) => l.id), ...st.candidates.map((c) => c.id)]);
    Timeline.keepOnly(keys);
    const lanes = $("lanes");
    lanes.replaceChildren(...st.lanes.map((lane) => this.laneRow(lane)));
    const cands = $("candidates");
    cands.replaceChildren(...st.candidates.map((c) => this.candidateRow(c)));
    $("candidates-head").hidden = st.candidates.length === 0;
    this.updateAudible();
    if (this.selected) this.select(this.selected);
    requestAnimationFrame(() => Timeline.updateClock(Timeline.time()));
  },

  button(label, title, onClick, cls = "") {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.title = title;
    if (cls) b.className = cls;
    b.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.guard(onClick);
    });
    return b;
  },

  link(label, href) {
    const a = document.createElement("a");
    a.textContent = label;
    a.href = href;
    a.setAttribute("download", "");
    return a;
  },

  row(key, name, kind, title) {
    const row = document.createElement("div");
    row.className = `row-item ${kind}`;
    row.dataset.key = key;
    const head = document.createElement("div");
    head.className = "row-head";
    const label = document.createElement("span");
    label.className = "row-name";
    label.textContent = name;
    label.title = title || name;
    head.append(label);
    const wave = document.createElement("div");
    wave.className = "wave";
    row.append(head, wave);
    return {row, head, wave};
  },

  laneRow(lane) {
    const meta = lane.meta && lane.meta.seed !== undefined ? `seed ${lane.meta.seed}` : lane.origin;
    const {row, head, wave} = this.row(lane.id, lane.name, "lane", `${lane.name} (${meta})`);
    const controls = document.createElement("span");
    controls.className = "row-controls";
    controls.append(
      this.button("M", "mute", () => this.patchLane(lane.id, {muted: !lane.muted}), lane.muted ? "on" : ""),
      this.button("S", "solo", () => this.patchLane(lane.id, {solo: !lane.solo}), lane.solo ? "on" : ""),
      this.link("WAV", `${this.base()}/lanes/${lane.id}/download?format=wav`),
      this.link("FLAC", `${this.base()}/lanes/${lane.id}/download?format=flac`),
      this.button("✕", "delete this lane", async () => {
        if (window.confirm(`Delete the lane "${lane.name}"?`)) {
          this.setState(await this.api(`${this.base()}/lanes/${lane.id}`, {method: "DELETE"}));
        }
      }),
    );
    head.append(controls);
    head.addEventListener("click", () => this.select(lane.id));
    Timeline.wave(wave, lane.id, `${this.base()}/lanes/${lane.id}/audio?v=${lane.version}`, "lane");
    return row;
  },

  candidateRow(cand) {
    const {row, head, wave} = this.row(cand.id, cand.name, "candidate",
      `${cand.name} (seed ${cand.meta.seed}${cand.meta.condition ? ", " + cand.meta.condition : ""})`);
    const controls = document.createElement("span");
    controls.className = "row-controls";
    const on = this.audition === cand.id;
    controls.append(this.button(on ? "■" : "▶", "audition with the lanes", async () => {
      this.audition = on ? null : cand.id;
      this.renderRows();
      if (this.audition && !Timeline.playing) {
        Timeline.seek(0);
        $("play").textContent = Timeline.toggle() ? "Pause" : "Play";
      }
    }, on ? "on" : ""));
    controls.append(this.button("Keep", "keep as a new lane", () => this.keep(cand.id, false), "keep"));
    if (cand.target) {
      controls.append(this.button("Replace", "replace the lane it was made from", () => this.keep(cand.id, true)));
    }
    controls.append(this.button("✕", "discard", async () => {
      this.setState(await this.api(`${this.base()}/candidates/${cand.id}`, {method: "DELETE"}));
    }));
    head.append(controls);
    Timeline.wave(wave, cand.id, `${this.base()}/candidates/${cand.id}/audio`, "candidate");
    return row;
  },

  async keep(candId, replace) {
    const st = await this.api(`${this.base()}/candidates/${candId}/keep`, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({replace}),
    });
    this.audition = null;
    this.setState(st);
  },

  // What is heard: the audible lanes (solo / mute) and the auditioned candidate.
  updateAudible() {
    const lanes = this.state.lanes;
    const soloed = lanes.some((l) => l.solo);
    const map = {};
    for (const l of lanes) map[l.id] = soloed ? l.solo : !l.muted;
    for (const c of this.state.candidates) map[c.id] = c.id === this.audition;
    Timeline.setAudible(map);
    document.querySelectorAll(".row-item").forEach((row) => row.classList.toggle("silent", !map[row.dataset.key]));
  },

  playbackEnded() {
    $("play").textContent = "Play";
  },
};

window.Studio = Studio;
