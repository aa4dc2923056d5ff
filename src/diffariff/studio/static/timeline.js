// diffariff studio: the timeline. Waveforms on one shared time axis, a playhead, region selection
// and playback of the audible rows through WebAudio. No library: plain DOM, canvas and WebAudio.
//
// A row is keyed by its id ("L3" for a lane, "C5" for a candidate); its audio is fetched once per
// version from the server (a float WAV, 48 kHz stereo) and decoded into an AudioBuffer.
"use strict";

const Timeline = {
  ctx: null,
  master: null,
  entries: new Map(),   // key -> {url, buffer, promise, canvases: Set}
  audible: new Map(),   // key -> bool (what plays)
  gains: new Map(),     // key -> GainNode of the playing source
  sources: [],
  duration: 0,
  playing: false,
  startAt: 0,           // AudioContext time at which the track's second 0 would have played
  offset: 0,            // where playback starts / was paused (seconds)
  region: null,         // {key, start, end} in seconds
  onRegion: null,       // callback(region) when a region is drawn
  onSelect: null,       // callback(key) when a row is clicked
  playhead: null,
  clock: null,
  host: null,
  drag: null,           // {key, canvas, t, x} while the mouse is down on a waveform

  init(host, playhead, clock) {
    this.host = host;
    this.playhead = playhead;
    this.clock = clock;
    window.addEventListener("resize", () => this.redrawAll());
    window.addEventListener("mousemove", (ev) => this.dragMove(ev));
    window.addEventListener("mouseup", (ev) => this.dragEnd(ev));
    this.tick = this.tick.bind(this);
  },

  timeAt(canvas, ev) {
    const r = canvas.getBoundingClientRect();
    return Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width)) * this.duration;
  },

  dragMove(ev) {
    const d = this.drag;
    if (!d || Math.abs(ev.clientX - d.x) < 4) return;
    const t = this.timeAt(d.canvas, ev);
    this.region = {key: d.key, start: Math.min(d.t, t), end: Math.max(d.t, t)};
    this.drawRegions();
  },

  // A click seeks (and selects the row); a drag selects a region of the row.
  dragEnd(ev) {
    const d = this.drag;
    if (!d) return;
    this.drag = null;
    const moved = Math.abs(ev.clientX - d.x) >= 4;
    if (!moved) this.seek(d.t);
    if (this.onSelect) this.onSelect(d.key);
    if (moved && this.onRegion) this.onRegion(this.region);
  },

  audioContext() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      try {
        this.ctx = new Ctx({sampleRate: 48000});
      } catch (e) {
        this.ctx = new Ctx();
      }
      this.master = this.ctx.createGain();
      this.master.gain.value = 0.9;
      this.master.connect(this.ctx.destination);
    }
    return this.ctx;
  },

  setDuration(seconds) {
    this.duration = seconds || 0;
    if (this.offset > this.duration) this.offset = 0;
    this.updateClock(this.offset);
  },

  // Fetch and decode ``url`` for ``key`` (once per url); resolves to the AudioBuffer.
  load(key, url) {
    let entry = this.entries.get(key);
    if (entry && entry.url === url) return entry.promise;
    const canvases = entry ? entry.canvases : new Set();
    entry = {url, buffer: null, canvases, promise: null};
    this.entries.set(key, entry);
    entry.promise = fetch(url)
      .then((res) => {
        if (!res.ok) throw new Error(`could not load the audio of ${key} (${res.status})`);
        return res.arrayBuffer();
      })
      .then((data) => this.audioContext().decodeAudioData(data))
      .then((buffer) => {
        if (this.entries.get(key) === entry) {
          entry.buffer = buffer;
          entry.canvases.forEach((c) => this.draw(c, buffer));
        }
        return buffer;
      });
    return entry.promise;
  },

  // Drop the audio of rows that no longer exist.
  keepOnly(keys) {
    for (const key of [...this.entries.keys()]) {
      if (!keys.has(key)) this.entries.delete(key);
    }
    if (this.region && !keys.has(this.region.key)) this.region = null;
  },

  // A waveform canvas for row ``key`` inside ``container``, with click-to-seek and drag-to-select.
  wave(container, key, url, kind) {
    const canvas = document.createElement("canvas");
    canvas.className = `wave-canvas ${kind}`;
    canvas.dataset.key = key;
    const overlay = document.createElement("div");
    overlay.className = "region";
    overlay.hidden = true;
    container.append(canvas, overlay);
    this.load(key, url).catch((err) => window.Studio && window.Studio.showError(err));
    const entry = this.entries.get(key);
    entry.canvases.add(canvas);
    if (entry.buffer) requestAnimationFrame(() => this.draw(canvas, entry.buffer));
    this.drawRegion(overlay, key);
    canvas.addEventListener("mousedown", (ev) => {
      this.drag = {key, canvas, t: this.timeAt(canvas, ev), x: ev.clientX};
      ev.preventDefault();
    });
    return canvas;
  },

  draw(canvas, buffer) {
    const width = Math.max(50, Math.floor(canvas.clientWidth * (window.devicePixelRatio || 1)));
    const height = Math.max(20, Math.floor(canvas.clientHeight * (window.devicePixelRatio || 1)));
    canvas.width = width;
    canvas.height = height;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    const chans = [];
    for (let c = 0; c < buffer.numberOfChannels; c++) chans.push(buffer.getChannelData(c));
    const n = buffer.length;
    const per = n / width;
    const mid = height / 2;
    g.fillStyle = getComputedStyle(canvas).color || "#4a8";
    for (let x = 0; x < width; x++) {
      const a = Math.floor(x * per);
      const b = Math.min(n, Math.max(a + 1, Math.floor((x + 1) * per)));
      let lo = 0;
      let hi = 0;
      const step = Math.max(1, Math.floor((b - a) / 256));
      for (let i = a; i < b; i += step) {
        let v = 0;
        for (const ch of chans) v += ch[i];
        v /= chans.length;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const top = mid - Math.min(1, hi) * mid;
      const bottom = mid - Math.max(-1, lo) * mid;
      g.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
    canvas.dataset.drawn = "1";
  },

  redrawAll() {
    for (const entry of this.entries.values()) {
      if (entry.buffer) entry.canvases.forEach((c) => this.draw(c, entry.buffer));
    }
    this.drawRegions();
  },

  drawRegion(overlay, key) {
    const r = this.region;
    if (!r || r.key !== key || !this.duration) {
      overlay.hidden = true;
      return;
    }
    overlay.hidden = false;
    overlay.style.left = `${(100 * r.start) / this.duration}%`;
    overlay.style.width = `${(100 * (r.end - r.start)) / this.duration}%`;
  },

  drawRegions() {
    this.host.querySelectorAll(".wave-canvas").forEach((canvas) => {
      this.drawRegion(canvas.nextElementSibling, canvas.dataset.key);
    });
  },

  setRegion(key, start, end) {
    this.region = key && end > start ? {key, start, end} : null;
    this.drawRegions();
  },

  // Which rows are heard: {key: bool}. Applied at once to what is playing.
  setAudible(map) {
    this.audible = new Map(Object.entries(map));
    for (const [key, gain] of this.gains) {
      gain.gain.setTargetAtTime(this.audible.get(key) ? 1 : 0, this.audioContext().currentTime, 0.01);
    }
  },

  time() {
    if (!this.playing) return this.offset;
    return Math.min(this.duration, this.audioContext().currentTime - this.startAt);
  },

  play() {
    const ctx = this.audioContext();
    ctx.resume();
    this.stopSources();
    if (this.offset >= this.duration - 0.01) this.offset = 0;
    const when = ctx.currentTime + 0.05;
    for (const [key, entry] of this.entries) {
      if (!entry.buffer) continue;
      const src = ctx.createBufferSource();
      src.buffer = entry.buffer;
      const gain = ctx.createGain();
      gain.gain.value = this.audible.get(key) ? 1 : 0;
      src.connect(gain).connect(this.master);
      src.start(when, this.offset);
      this.sources.push(src);
      this.gains.set(key, gain);
    }
    this.startAt = when - this.offset;
    this.playing = true;
    requestAnimationFrame(this.tick);
  },

  pause() {
    this.offset = this.time();
    this.stopSources();
    this.playing = false;
  },

  stop() {
    this.stopSources();
    this.playing = false;
    this.offset = 0;
    this.updateClock(0);
  },

  toggle() {
    if (this.playing) this.pause();
    else this.play();
    return this.playing;
  },

  seek(t) {
    const was = this.playing;
    if (was) this.stopSources();
    this.offset = Math.max(0, Math.min(this.duration, t));
    this.playing = false;
    if (was) this.play();
    else this.updateClock(this.offset);
  },

  stopSources() {
    for (const src of this.sources) {
      try {
        src.stop();
      } catch (e) {
        // already stopped
      }
      src.disconnect();
    }
    this.sources = [];
    this.gains.clear();
  },

  tick() {
    if (!this.playing) return;
    const t = this.time();
    this.updateClock(t);
    if (t >= this.duration) {
      this.stop();
      if (window.Studio) window.Studio.playbackEnded();
      return;
    }
    requestAnimationFrame(this.tick);
  },

  updateClock(t) {
    if (this.clock) this.clock.textContent = `${t.toFixed(2)} / ${this.duration.toFixed(2)} s`;
    const canvas = this.host && this.host.querySelector(".wave-canvas");
    if (!canvas || !this.playhead || !this.duration) {
      if (this.playhead) this.playhead.hidden = true;
      return;
    }
    const box = this.host.getBoundingClientRect();
    const r = canvas.getBoundingClientRect();
    this.playhead.hidden = false;
    this.playhead.style.left = `${r.left - box.left + (r.width * t) / this.duration}px`;
  },
};

window.Timeline = Timeline;
