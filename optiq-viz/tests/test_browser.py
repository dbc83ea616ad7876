"""The HTML page in a real browser: headless Chromium opens the page written from a real BVH clip (file://, no
network), runs it without a JavaScript error, and draws the skeleton: the test reads the screenshots' pixels.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, answers
on fd 4, NUL-terminated JSON), so no websocket package, driver or browser download is needed. The screenshots
are decoded by conftest.py's ``read_png`` (zlib and the PNG row filters), independently of the browser and of any
imaging package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import subprocess
import time

import numpy as np
import optiq
import pytest
from optiq_viz.html import DIV_ID, DecimationWarning, render_html
from optiq_viz.plots import PALETTE

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # WebGL (plotly's 3D scenes) on the CPU: Chromium no longer falls back to it silently.
         "--enable-unsafe-swiftshader", "--hide-scrollbars", "--remote-debugging-pipe")
WIDTH, HEIGHT = 1200, 900
# A safety net against a hung browser, not a timing assertion.
DEADLINE_S = 60.0


class Chromium:
    """A headless Chromium and one page, over the DevTools protocol on a pipe."""

    def __init__(self, exe: str, profile: str):
        # The shell moves our pipes to the descriptors Chromium reads (3) and writes (4).
        self.proc = subprocess.Popen(
            ["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null', exe, *FLAGS,
             f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.buffer = b""
        self.last_id = 0
        self.events: list[dict] = []
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()  # the fixture never gets the object, so nobody else would stop the browser
            raise

    def call(self, method: str, params: dict | None = None, page: bool = False) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if page:
            message["sessionId"] = self.session
        self.proc.stdin.write(json.dumps(message).encode() + b"\0")
        self.proc.stdin.flush()
        deadline = time.monotonic() + DEADLINE_S
        while True:
            answer = self._receive(deadline)
            if answer.get("id") == self.last_id:
                assert "error" not in answer, f"{method}: {answer['error']}"
                return answer["result"]
            self.events.append(answer)

    def page(self, method: str, params: dict | None = None) -> dict:
        return self.call(method, params, page=True)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + DEADLINE_S
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._receive(deadline))
        return next(e for e in self.events if e.get("method") == method)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited); a thrown error fails the test."""
        result = self.page("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True})
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.page("Page.captureScreenshot", {"format": "png"})["data"])

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.page("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def _receive(self, deadline: float) -> dict:
        fd = self.proc.stdout.fileno()
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([fd], [], [], left)[0], "chromium did not answer"
            chunk = os.read(fd, 1 << 20)
            assert chunk, f"chromium exited with code {self.proc.poll()}"
            self.buffer += chunk
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def close(self) -> None:
        try:
            self.call("Browser.close")
            self.proc.wait(timeout=DEADLINE_S)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def colour_mask(pixels: np.ndarray, hex_colour: str, box: tuple[int, int, int, int], tol: int = 24) -> np.ndarray:
    """Pixels inside ``box`` (x0, y0, x1, y1) within ``tol`` of the colour on every channel."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    x0, y0, x1, y1 = box
    near = np.all(np.abs(pixels[..., :3].astype(np.int64) - rgb) <= tol, axis=-1)
    inside = np.zeros_like(near)
    inside[y0:y1, x0:x1] = True
    return near & inside


WAIT_FOR = """new Promise((resolve, reject) => {
  const gd = document.getElementById(%(div)s), start = Date.now();
  (function poll() {
    const value = %(value)s;
    if (%(test)s) {
      requestAnimationFrame(() => requestAnimationFrame(() => resolve(value)));
    } else if (Date.now() - start > 30000) {
      reject(new Error('still ' + JSON.stringify(value)));
    } else {
      setTimeout(poll, 20);
    }
  })();
})"""
FRAMES = "gd && gd._transitionData && gd._transitionData._frames ? gd._transitionData._frames.length : 0"
SLIDER = "gd._fullLayout.sliders[0].active"
# The frame on screen: the one whose float32 x (decoded here from its base64) the clip's trace now draws.
SHOWN = """gd._transitionData._frames.findIndex(f => {
  const x = new Float32Array(Uint8Array.from(atob(f.data[0].x.bdata), c => c.charCodeAt(0)).buffer);
  const drawn = gd._fullData[1].x;
  return f.data[0].x.dtype === 'f4' && x.length === drawn.length && x.every((v, i) => Object.is(v, drawn[i]));
})"""


def wait_for(browser: Chromium, value: str, test: str):
    """Poll the page until ``test`` (JavaScript, of ``value`` and ``gd``) holds; then the value, once drawn."""
    return browser.evaluate(WAIT_FOR % {"div": json.dumps(DIV_ID), "value": value, "test": test})


def rect(browser: Chromium, selector: str) -> tuple[int, int, int, int]:
    r = browser.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                         ".getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()")
    return tuple(int(round(v)) for v in r)


@pytest.fixture(scope="module")
def page(chromium, data_dir, tmp_path_factory):
    """A walk from a real BVH with a frame label, and as its prediction the same walk 0.6 m to the side (so that
    both skeletons are visible), open in Chromium."""
    folder = tmp_path_factory.mktemp("browser")
    clip = optiq.load(data_dir / "bvh" / "cmu_02_01_bvhtodeepmimic.bvh")[0][1:]  # frame 0 is a T-pose
    half = np.where(np.arange(clip.num_frames) < clip.num_frames // 2, "first half", "second half")
    clip = clip.with_labels(frame_labels={"part": half})
    pred = clip.replace(root_translation=clip.root_translation + [0.0, 0.6, 0.0])
    with pytest.warns(DecimationWarning, match="every 2nd frame of 343"):
        html = render_html(clip, folder / "walk.html", pred=pred, max_frames=200)
    browser = Chromium(chromium, str(folder / "profile"))
    try:
        for domain in ("Runtime", "Log", "Page", "Network"):
            browser.page(f"{domain}.enable")
        browser.page("Emulation.setDeviceMetricsOverride",
                     {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        browser.page("Page.navigate", {"url": html.resolve().as_uri()})
        browser.wait_event("Page.loadEventFired")
        frames = wait_for(browser, FRAMES, "value === 172")
        yield browser, frames, folder
    finally:
        browser.close()


def test_page_loads_offline_without_javascript_errors(page):
    browser, frames, _ = page
    assert frames == 172  # 343 frames decimated to every 2nd (max_frames=200)
    assert browser.evaluate(f"document.getElementById({json.dumps(DIV_ID)}).data.length") == 5
    errors = [e for e in browser.events
              if e.get("method") == "Runtime.exceptionThrown"
              or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    requests = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
    assert requests and all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests


def test_screenshot_shows_the_skeleton_and_it_moves(page, read_png):
    browser, _, folder = page
    scene = rect(browser, "#scene")
    legend = rect(browser, ".legend")
    blue, red = PALETTE[0], PALETTE[1]  # the clip and the prediction

    def skeleton_pixels(pixels):
        masks = [colour_mask(pixels, colour, scene) for colour in (blue, red)]
        for m in masks:
            m[legend[1]:legend[3], legend[0]:legend[2]] = False
        return masks

    png = browser.screenshot()
    (folder / "first.png").write_bytes(png)  # kept with pytest's temporary files, to look at
    first = read_png(png)
    assert first.shape[:2] == (HEIGHT, WIDTH)
    assert tuple(first[5, 5, :3]) == (255, 255, 255)  # the page background: the decoding is right
    clip_px, pred_px = skeleton_pixels(first)
    assert clip_px.sum() > 300 and pred_px.sum() > 300, (clip_px.sum(), pred_px.sum())

    # A click in the middle of the slider's rail jumps to the middle frame, as a user would.
    x0, y0, x1, y1 = rect(browser, ".slider-rail-rect")
    browser.click((x0 + x1) / 2, (y0 + y1) / 2)
    active = wait_for(browser, SLIDER, "value > 60")
    assert 60 < active < 110
    assert wait_for(browser, SHOWN, f"value === {active}") == active
    moved_clip, _ = skeleton_pixels(read_png(browser.screenshot()))
    assert moved_clip.sum() > 300
    changed = np.logical_xor(clip_px, moved_clip).sum()
    assert changed > 0.5 * clip_px.sum(), (changed, clip_px.sum())


def test_play_advances_and_pause_stops(page):
    browser, _, _ = page
    start = wait_for(browser, SHOWN, "true")
    buttons = browser.evaluate("Array.from(document.querySelectorAll('.updatemenu-button')).map(b => {"
                               "const r = b.getBoundingClientRect(); return [b.textContent, r.left + r.width / 2,"
                               " r.top + r.height / 2]; })")
    where = {text.split()[-1]: (x, y) for text, x, y in buttons}
    assert set(where) == {"play", "pause"}
    browser.click(*where["play"])
    assert wait_for(browser, SHOWN, f"value >= {start + 3} || value < {start}") != start
    browser.click(*where["pause"])
    settled = wait_for(browser, SHOWN, "true")
    time.sleep(0.5)  # a paused animation stays where it is, however long one waits
    assert wait_for(browser, SHOWN, "true") == settled
