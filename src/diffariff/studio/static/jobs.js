// diffariff studio: generation and edit jobs. A job is queued with the settings of the forms, then
// polled every POLL_MS until it is done, failed or cancelled; its progress (sampler steps, time left)
// is shown in #job. When it ends, the page reloads the track to show the new candidates.
"use strict";

const POLL_MS = 400;

Object.assign(Studio, {
  async submitJob(kind, form, op) {
    const data = new FormData(form);
    for (const [k, v] of new FormData($("sampling-form"))) data.set(k, v);
    if (kind === "generate") {
      data.set("use_prior", form.elements.use_prior.checked ? "1" : "0");
    } else {
      if (!this.selected) throw new Error("select a lane to edit first (click its waveform)");
      data.set("op", op);
      data.set("lane", this.selected);
    }
    const res = await this.api(`${this.base()}/${kind}`, {method: "POST", body: data});
    this.follow(res.job);
  },

  follow(job) {
    this.job = job;
    this.showJob(job);
    const poll = async () => {
      if (!this.job || this.job.id !== job.id) return;
      try {
        const res = await this.api(`${this.base()}/jobs/${job.id}`);
        this.job = res.job;
      } catch (e) {
        this.job = null;
        this.showError(e);
        $("job").hidden = true;
        return;
      }
      this.showJob(this.job);
      if (["queued", "running"].includes(this.job.status)) {
        setTimeout(poll, POLL_MS);
        return;
      }
      const done = this.job;
      this.job = null;
      setTimeout(() => {
        if (!this.job) $("job").hidden = true;
      }, 1500);
      if (done.status === "error") this.showError(done.error);
      this.setState(await this.api(this.base()));
    };
    setTimeout(poll, POLL_MS);
  },

  showJob(job) {
    $("job").hidden = false;
    const bar = $("job-progress");
    bar.max = Math.max(1, job.total);
    bar.value = job.step;
    let text = `${job.label}: `;
    if (job.status === "queued") text += job.position ? `waiting (${job.position} job(s) ahead)` : "waiting for the model";
    else if (job.status === "running") {
      text += job.phase === "sampling" ? `step ${job.step} / ${job.total}` : job.phase;
      if (job.eta !== null) text += `, about ${Math.ceil(job.eta)} s left`;
    } else text += job.status;
    text += ` (${job.elapsed.toFixed(1)} s)`;
    $("job-text").textContent = text;
    $("job").dataset.status = job.status;
    $("cancel").disabled = !["queued", "running"].includes(job.status);
    $("generate").disabled = ["queued", "running"].includes(job.status);
  }
});

document.addEventListener("DOMContentLoaded", () => Studio.init());
