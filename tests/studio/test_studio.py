"""diffariff studio: the server's handlers through Starlette's test client, and one end-to-end run in a
real headless Chromium (Selenium, Debian's ``chromium`` + ``chromium-driver``) against uvicorn.

The model is a tiny bundle of randomly initialised models (real code paths, noise-like audio); the
audio the tests upload is made here: a plucked-string melody over a noise-burst beat, 48 kHz stereo.
Tracks are 1 s long and jobs run 2 Euler steps, so each generation takes seconds on a busy CPU.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf
from starlette.testclient import TestClient

from diffariff.studio.server import STATIC, create_app
from diffariff.studio.uploads import Limits
from diffariff.testing import make_tiny_bundle

SR = 48_000
FAST = {"sampler": "euler", "steps": "2", "n": "1", "seed": "3"}
LIMITS = Limits(max_seconds=4.0, max_upload_bytes=2_000_000)
BASE = "http://127.0.0.1"


def music(seconds: float = 1.0, root: float = 110.0, seed: int = 0) -> np.ndarray:
    """float32 [2, N] at 48 kHz: decaying plucked notes (root, fifth, octave) every 1/8 s and a
    noise burst on every quarter second, panned apart."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    out = np.zeros((2, n))
    note_len, beat = SR // 8, SR // 4
    for k, start in enumerate(range(0, n, note_len)):
        f = root * (1.0, 1.5, 2.0, 1.5)[k % 4]
        seg = t[: min(note_len, n - start)]
        tone = np.sin(2 * np.pi * f * seg) * np.exp(-seg * 12.0)
        out[0, start:start + len(seg)] += 0.3 * tone
        out[1, start:start + len(seg)] += 0.2 * tone
    for start in range(0, n, beat):
        m = min(2400, n - start)
        burst = rng.standard_normal(m) * np.exp(-np.arange(m) / 300.0)
        out[0, start:start + m] += 0.1 * burst
        out[1, start:start + m] += 0.15 * burst
    return out.astype(np.float32)


def wav_bytes(audio: np.ndarray, sr: int = SR, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.asarray(audio).T, sr, subtype=subtype, format=fmt)
    return buf.getvalue()


def read_bytes(data: bytes) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.T, sr


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return make_tiny_bundle(tmp_path_factory.mktemp("studio") / "tiny", seed=0, train_frames=24).root


@pytest.fixture(scope="module")
def client(bundle_dir):
    app = create_app(str(bundle_dir), limits=LIMITS)
    with TestClient(app, base_url=BASE) as c:
        assert app.state.studio.jobs.wait_ready(300), app.state.studio.jobs.load_error
        c.app_state = app.state.studio
        yield c
    assert not app.state.studio.workspaces.base.exists()  # every browser session's folder is gone


def new_session(client) -> str:
    r = client.post("/api/session")
    assert r.status_code == 200
    return r.json()["session"]


def start_mix(client, seconds: float = 1.0, name: str = "song.wav") -> tuple[str, dict]:
    sid = new_session(client)
    r = client.post(f"/api/s/{sid}/start", data={"mode": "mix"},
                    files={"files": (name, wav_bytes(music(seconds)), "audio/wav")})
    assert r.status_code == 200, r.text
    return sid, r.json()


def run_job(client, sid: str, path: str, data: dict, files: dict | None = None, timeout: float = 240) -> dict:
    r = client.post(f"/api/s/{sid}/{path}", data=data, files=files)
    assert r.status_code == 200, r.text
    job = r.json()["job"]
    t0 = time.monotonic()
    while job["status"] in ("queued", "running"):
        assert time.monotonic() - t0 < timeout, job
        time.sleep(0.05)
        job = client.get(f"/api/s/{sid}/jobs/{job['id']}").json()["job"]
    return job


def assert_one_line_error(r, status: int, *words: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    msg = r.json()["error"]
    assert "\n" not in msg and "Traceback" not in msg and "/tmp" not in msg, msg
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)
    return msg


# ------------------------------------------------------------------------------ page and assets
EXTERNAL = re.compile(r"(?:https?:|wss?:|ftp:)?//[a-z0-9-]+(?:\.[a-z0-9-]+)+", re.IGNORECASE)


def test_page_and_assets_reference_nothing_external(client):
    page = client.get("/")
    assert page.status_code == 200 and "diffariff studio" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert {"/static/studio.js", "/static/timeline.js", "/static/studio.css"} <= set(assets)
    texts = {"/": page.text}
    for path in assets:
        r = client.get(path)
        assert r.status_code == 200, path
        texts[path] = r.text
    for f in STATIC.iterdir():  # every shipped file, referenced or not
        texts[f.name] = f.read_text(encoding="utf-8")
    for name, text in texts.items():
        assert not EXTERNAL.search(text), (name, EXTERNAL.search(text).group(0))
        assert "@import" not in text and "@font-face" not in text, name
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert all(ref.startswith(("/static/", "#", "data:")) for ref in refs), refs


def test_info_and_refusals_of_other_hosts(client):
    info = client.get("/api/info").json()
    assert info["model"] == "ready" and "euler" in info["samplers"] and "consistency" in info["samplers"]
    assert info["limits"]["max_seconds"] == LIMITS.max_seconds
    assert client.get("/api/info", headers={"host": "evil.example"}).status_code == 400
    assert_one_line_error(client.get("/api/s/nope"), 404, "expired")
    assert_one_line_error(client.get("/api/nothing"), 404, "no such page")


# ------------------------------------------------------------------------------ the main path
def test_upload_generate_keep_download(client):
    sid, st = start_mix(client)
    assert st["samples"] == SR and [ln["origin"] for ln in st["lanes"]] == ["mix"]
    job = run_job(client, sid, "generate", {**FAST, "text": "warm bass", "n": "2"})
    assert job["status"] == "done", job
    assert job["step"] == job["total"] == 2  # progress counted in sampler steps
    cands = job["result"]["candidates"]
    assert len(cands) == 2
    r = client.get(f"/api/s/{sid}/candidates/{cands[0]}/audio")
    audio, sr = read_bytes(r.content)
    assert sr == SR and audio.shape == (2, SR) and np.isfinite(audio).all() and np.abs(audio).max() > 0

    st = client.post(f"/api/s/{sid}/candidates/{cands[0]}/keep", json={}).json()
    assert [ln["origin"] for ln in st["lanes"]] == ["mix", "generated"]
    assert st["candidates"] == []  # the other candidate of the job was discarded
    new = st["lanes"][1]
    assert new["name"] == "warm bass #1" and new["meta"]["seed"] == 3 and new["meta"]["text"] == "warm bass"

    wav, sr = read_bytes(client.get(f"/api/s/{sid}/lanes/{new['id']}/download?format=wav").content)
    flac_r = client.get(f"/api/s/{sid}/lanes/{new['id']}/download?format=flac")
    assert "attachment" in flac_r.headers["content-disposition"]
    flac, sr2 = read_bytes(flac_r.content)
    assert sr == sr2 == SR and wav.shape == flac.shape == (2, SR)
    np.testing.assert_allclose(wav, audio, atol=2e-6)  # 24-bit copy of the kept candidate
    np.testing.assert_allclose(flac, wav, atol=2.5e-7)  # both 24-bit (one step: 1.2e-7)

    # the kept lane joins the context: the mix is the sum of both lanes; muting it removes it again
    mix, _ = read_bytes(client.get(f"/api/s/{sid}/mix/download?format=wav").content)
    lane0, _ = read_bytes(client.get(f"/api/s/{sid}/lanes/{st['lanes'][0]['id']}/download").content)
    total = lane0 + wav
    total *= min(1.0, 0.99 / np.abs(total).max())
    np.testing.assert_allclose(mix, total, atol=1e-4)
    client.patch(f"/api/s/{sid}/lanes/{new['id']}", json={"muted": True})
    mix, _ = read_bytes(client.get(f"/api/s/{sid}/mix/download?format=flac").content)
    np.testing.assert_allclose(mix, lane0, atol=1e-4)
    assert_one_line_error(client.get(f"/api/s/{sid}/mix/download?format=mp3"), 400, "wav or flac")


def test_start_from_stems_or_silence(client):
    sid = new_session(client)
    files = [("files", ("drums.wav", wav_bytes(music(1.0, seed=1)), "audio/wav")),
             ("files", ("keys.flac", wav_bytes(music(0.75, 220.0), fmt="FLAC"), "audio/flac"))]
    st = client.post(f"/api/s/{sid}/start", data={"mode": "stems"}, files=files).json()
    assert [ln["name"] for ln in st["lanes"]] == ["drums", "keys"] and st["samples"] == SR
    assert any("padded" in note for note in st["notes"])
    st = client.post(f"/api/s/{sid}/lanes", files={"files": ("bass.wav", wav_bytes(music(2.0)), "audio/wav")}).json()
    assert len(st["lanes"]) == 3 and any("cropped" in note for note in st["notes"])
    st = client.delete(f"/api/s/{sid}/lanes/{st['lanes'][2]['id']}").json()
    assert len(st["lanes"]) == 2

    st = client.post(f"/api/s/{sid}/start", data={"mode": "silence", "seconds": "1.5"}).json()
    assert st["lanes"] == [] and st["samples"] == int(1.5 * SR)
    job = run_job(client, sid, "generate", {**FAST, "sampler": "consistency", "steps": "", "text": "drums"})
    assert job["status"] == "done" and job["total"] == 5, job  # the 5-step model's default
    st = client.delete(f"/api/s/{sid}/candidates").json()
    assert st["candidates"] == []


def test_lane_edits_inpaint_vary_loop_interpolate(client):
    sid, st = start_mix(client)
    lane = st["lanes"][0]["id"]
    original, _ = read_bytes(client.get(f"/api/s/{sid}/lanes/{lane}/audio").content)

    job = run_job(client, sid, "edit", {**FAST, "op": "inpaint", "lane": lane, "start": "0.3", "end": "0.6"})
    assert job["status"] == "done", job
    cand = job["result"]["candidates"][0]
    edited, _ = read_bytes(client.get(f"/api/s/{sid}/candidates/{cand}/audio").content)
    a, b = int(0.27 * SR), int(0.63 * SR)  # outside the region and its 50 ms crossfades: the lane unchanged
    np.testing.assert_allclose(edited[:, :a], original[:, :a], atol=1e-6)
    np.testing.assert_allclose(edited[:, b:], original[:, b:], atol=1e-6)
    assert not np.allclose(edited[:, int(0.35 * SR):int(0.55 * SR)], original[:, int(0.35 * SR):int(0.55 * SR)])
    st = client.post(f"/api/s/{sid}/candidates/{cand}/keep", json={"replace": True}).json()
    assert len(st["lanes"]) == 1 and st["lanes"][0]["version"] == 2 and st["lanes"][0]["origin"] == "edited"

    for data, total in (({"op": "vary", "strength": "0.5"}, 1),
                        ({"op": "loop", "repeats": "2", "strength": "1"}, 2),
                        ({"op": "interpolate", "interp_a": "bass", "interp_b": "strings", "ratio": "0.3"}, 1)):
        job = run_job(client, sid, "edit", {**FAST, "lane": lane, **data})
        assert job["status"] == "done" and job["total"] == total, (data, job)
        meta = client.get(f"/api/s/{sid}").json()["candidates"][-1]["meta"]
        assert meta["op"] == data["op"] and meta["edited"] == st["lanes"][0]["name"]
    assert_one_line_error(client.post(f"/api/s/{sid}/edit", data={**FAST, "op": "inpaint", "lane": lane}),
                          400, "select a region")
    assert_one_line_error(client.post(f"/api/s/{sid}/edit", data={**FAST, "op": "interpolate", "lane": lane}),
                          400, "both prompts")
    assert_one_line_error(client.post(f"/api/s/{sid}/edit", data={**FAST, "op": "vary", "lane": "L99"}),
                          404, "no lane")


def test_session_zip_round_trip(client):
    sid = new_session(client)
    files = [("files", ("drums.wav", wav_bytes(music(1.0, seed=1)), "audio/wav")),
             ("files", ("keys.wav", wav_bytes(music(1.0, 220.0)), "audio/wav"))]
    st = client.post(f"/api/s/{sid}/start", data={"mode": "stems"}, files=files).json()
    client.patch(f"/api/s/{sid}/lanes/{st['lanes'][1]['id']}", json={"muted": True, "name": "Keys, soft"})
    settings = {"text": "warm bass", "steps": "12", "use_prior": "0"}
    assert client.put(f"/api/s/{sid}/settings", json=settings).status_code == 200
    r = client.get(f"/api/s/{sid}/session.zip")
    assert r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("session.json"))
        assert [ln["file"] for ln in manifest["lanes"]] == ["lanes/01_drums.flac", "lanes/02_keys_soft.flac"]
    before = [read_bytes(client.get(f"/api/s/{sid}/lanes/{ln['id']}/audio").content)[0] for ln in st["lanes"]]

    other = new_session(client)
    st2 = client.post(f"/api/s/{other}/open", files={"file": ("my.zip", r.content, "application/zip")}).json()
    assert [(ln["name"], ln["muted"]) for ln in st2["lanes"]] == [("drums", False), ("Keys, soft", True)]
    assert st2["samples"] == SR and st2["settings"] == settings
    for ln, ref in zip(st2["lanes"], before):
        audio, _ = read_bytes(client.get(f"/api/s/{other}/lanes/{ln['id']}/audio").content)
        np.testing.assert_allclose(audio, ref, atol=2e-7)  # 24-bit FLAC of 16-bit uploads: exact

    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("session.json", json.dumps({**manifest, "lanes": [{"file": "../../etc/passwd"}]}))
    assert_one_line_error(client.post(f"/api/s/{other}/open", files={"file": ("evil.zip", bad.getvalue())}),
                          400, "names no file")
    assert_one_line_error(client.post(f"/api/s/{other}/open", files={"file": ("x.zip", b"not a zip")}),
                          400, "x.zip is not a zip file")


# ------------------------------------------------------------------------------ errors
def test_bad_uploads_and_values_are_one_line_errors(client):
    sid = new_session(client)

    def start(name: str, data: bytes):
        return client.post(f"/api/s/{sid}/start", data={"mode": "mix"}, files={"files": (name, data, "audio/wav")})

    assert_one_line_error(start("notes.wav", b"this is text, not audio " * 40), 400, "notes.wav", "not a readable audio")
    assert_one_line_error(start("long.wav", wav_bytes(music(5.0))), 400, "long.wav", "longer than the limit")
    nan = music(1.0)
    nan[0, 100] = np.nan
    assert_one_line_error(start("nan.wav", wav_bytes(nan, subtype="FLOAT")), 400, "nan.wav", "NaN")
    assert_one_line_error(start("empty.wav", b""), 400, "empty.wav", "empty")
    assert_one_line_error(start("zero.wav", wav_bytes(np.zeros((2, 0), np.float32))), 400, "zero.wav", "no audio")
    assert_one_line_error(start("short.wav", wav_bytes(music(0.2))), 400, "at least 0.5 s")
    big = b"RIFF" + bytes(LIMITS.max_upload_bytes + 10)
    assert_one_line_error(start("big.wav", big), 413, "larger than the upload limit")
    huge = bytes(2 * LIMITS.max_upload_bytes + (2 << 20))  # past the whole request's limit
    assert_one_line_error(start("huge.wav", huge), 413, "larger than the limit")
    assert_one_line_error(client.post(f"/api/s/{sid}/start", data={"mode": "silence", "seconds": "9"}),
                          400, "length (s) must be between")
    assert_one_line_error(client.post(f"/api/s/{sid}/generate", data=FAST), 400, "start a track first")

    start("ok.wav", wav_bytes(music(1.0)))
    for field, value, words in (("steps", "abc", "whole number"), ("steps", "0", "between 1 and"),
                                ("n", "99", "candidates"), ("width", "2", "stereo width"),
                                ("sampler", "magic", "unknown sampler"), ("cfg_clap", "nan", "CLAP guidance"),
                                ("harmony", "-1", "harmony guidance")):
        r = client.post(f"/api/s/{sid}/generate", data={**FAST, field: value})
        assert_one_line_error(r, 400, *words.split("|"))
    short_ref = {"reference": ("ref.wav", wav_bytes(music(0.5)), "audio/wav")}
    assert_one_line_error(client.post(f"/api/s/{sid}/generate", data=FAST, files=short_ref), 400, "ref.wav", "1 s")
    assert client.app_state.jobs.active(sid) == []  # nothing was queued by a refused request


def test_reference_upload_and_cancel(client):
    sid, _ = start_mix(client)
    ref = {"reference": ("ref.wav", wav_bytes(music(1.2, 330.0)), "audio/wav")}
    job = run_job(client, sid, "generate", {**FAST, "text": "organ"}, files=ref)
    assert job["status"] == "done"
    meta = client.get(f"/api/s/{sid}").json()["candidates"][0]["meta"]
    assert meta["condition"] == "text+reference" and meta["reference"] is True

    r = client.post(f"/api/s/{sid}/generate", data={**FAST, "steps": "200"})
    job = r.json()["job"]
    cancelled = client.post(f"/api/s/{sid}/jobs/{job['id']}/cancel").json()["job"]
    assert cancelled["status"] in ("cancelled", "running")
    t0 = time.monotonic()
    while client.get(f"/api/s/{sid}/jobs/{cancelled['id']}").json()["job"]["status"] == "running":
        assert time.monotonic() - t0 < 60
        time.sleep(0.05)
    final = client.get(f"/api/s/{sid}/jobs/{cancelled['id']}").json()["job"]
    assert final["status"] == "cancelled" and final["step"] < 200
    assert len(client.get(f"/api/s/{sid}").json()["candidates"]) == 1  # nothing added by the cancelled job


def test_jobs_of_two_tabs_run_one_at_a_time(client):
    tabs = [start_mix(client)[0] for _ in range(2)]
    ids = [client.post(f"/api/s/{sid}/generate", data=FAST).json()["job"]["id"] for sid in tabs]
    first, second = (client.app_state.jobs.get(j) for j in ids)
    t0 = time.monotonic()
    while second.status in ("queued", "running"):
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    assert first.status == second.status == "done"
    assert second.started >= first.finished  # the second tab's job waited for the first
    assert client.get(f"/api/s/{tabs[0]}/jobs/{ids[1]}").status_code == 404  # not that tab's job
    ws = client.app_state.workspaces.get(tabs[0])
    client.get(f"/api/s/{tabs[0]}/mix/download")
    assert list((ws.root / "out").iterdir()) == []  # a download's file is removed once sent


def test_a_model_that_cannot_load_is_one_line_in_the_page():
    from diffariff.errors import CheckpointError

    def broken():
        raise CheckpointError("model bundle /x is missing codec.safetensors")

    app = create_app("/x", limits=LIMITS, loader=broken)
    with TestClient(app, base_url=BASE) as c:
        assert not app.state.studio.jobs.wait_ready(30)
        info = c.get("/api/info").json()
        assert info["model"] == "failed" and "missing codec.safetensors" in info["load_error"]
        sid, _ = start_mix(c)  # the page still works: tracks, lanes, downloads
        job = run_job(c, sid, "generate", FAST)
        assert job["status"] == "error" and job["error"].startswith("the model could not be loaded"), job


def test_command_line_options():
    from diffariff.cli import main

    assert main(["studio", "--port", "0"]) == 2
    assert main(["studio", "--bundle", "/nonexistent/bundle"]) == 2


# ------------------------------------------------------------------------------ a real browser
def _chromium() -> tuple[str, str] | None:
    """(browser, driver) of Debian's chromium + chromium-driver, or None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def live_server(bundle_dir):
    """The studio under uvicorn on a free port of 127.0.0.1, in a thread; yields its address."""
    import uvicorn

    app = create_app(str(bundle_dir), limits=LIMITS)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        assert time.monotonic() - t0 < 30 and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium and chromium-driver "
                    "(apt-get install chromium chromium-driver; scripts/bootstrap.sh installs them)")
def test_browser_upload_generate_keep_download(live_server, tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never try the network
    browser, driver_path = _chromium()
    song = tmp_path / "song.wav"
    song.write_bytes(wav_bytes(music(1.0)))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}",
                "--disable-background-networking", "--disable-component-update", "--no-first-run"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        wait = WebDriverWait(driver, 240, poll_frequency=0.1)
        t0 = time.monotonic()
        driver.get(f"{live_server}/")
        wait.until(lambda d: d.find_element(By.ID, "model-status").get_attribute("data-state") == "ready")
        load_seconds = time.monotonic() - t0

        driver.find_element(By.ID, "start-files").send_keys(str(song))
        driver.find_element(By.ID, "start-button").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lanes .row-item")) == 1)

        Select(driver.find_element(By.ID, "sampler")).select_by_value("euler")
        for field, value in (("steps", "2"), ("n", "1"), ("seed", "5"), ("text", "warm bass")):
            el = driver.find_element(By.ID, field)
            el.clear()
            el.send_keys(value)
        t1 = time.monotonic()
        driver.find_element(By.ID, "generate").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#candidates .row-item button.keep"))
        driver.find_element(By.CSS_SELECTOR, "#candidates .row-item button.keep").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lanes .row-item")) == 2)
        new_lane = driver.find_elements(By.CSS_SELECTOR, "#lanes .row-item")[1]
        assert new_lane.find_element(By.CSS_SELECTOR, ".row-name").text == "warm bass"
        # the lane's audio was decoded by WebAudio and drawn: it is playable
        wait.until(lambda d: new_lane.find_element(By.CSS_SELECTOR, "canvas").get_attribute("data-drawn") == "1")
        click_to_lane = time.monotonic() - t1
        assert not driver.find_element(By.ID, "error").is_displayed()

        new_lane.find_element(By.LINK_TEXT, "WAV").click()
        wait.until(lambda d: [p for p in downloads.iterdir() if p.suffix == ".wav"])
        path = next(p for p in downloads.iterdir() if p.suffix == ".wav")
        audio, sr = sf.read(str(path), always_2d=True)
        assert sr == SR and audio.shape == (SR, 2) and np.abs(audio).max() > 0
        problems = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not problems, problems  # no failed request, no script error, no CSP violation
        print(f"page ready in {load_seconds:.2f} s; click to playable lane {click_to_lane:.2f} s")
    finally:
        driver.quit()
