"""Helpers of the demo's tests: a stand-in classifier, drawings made like the page makes them, a client.

The stand-in has :class:`fometa.FewShotClassifier`'s interface (``fit``, ``predict_proba``,
``staged_predict_proba``, ``transform``, ``classes_``) and Omniglot's input preprocessing
(:class:`fometa.data.ImageSpec`: 28x28, bilevel, the packer's nearest resize), and classifies by the
nearest class mean: the server's tests need no trained model. It reports ``classes_`` in reverse
order, so that a server that forgot to map columns to classes would be caught.
"""
from __future__ import annotations

import base64
import io
import itertools
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

STATIC = Path(__file__).resolve().parents[2] / "fometa" / "demo"


def page_constant(name: str) -> int:
    """A numeric constant of the page's script (``const NAME = 105;``): the tests draw as the page does."""
    match = re.search(rf"^const {name} = (\d+);", (STATIC / "demo.js").read_text(), re.MULTILINE)
    assert match, f"demo.js defines no constant {name}"
    return int(match.group(1))


class NearestMean:
    """Nearest class mean of the 28x28 inputs; probabilities sharpen with the step (step 0: uniform)."""

    ways = 5

    def __init__(self):
        from fometa.data import ImageSpec

        self.spec = ImageSpec(28, 28, 1, resize="nearest", bilevel=True)
        self.fail_with = None

    def transform(self, images):  # as FewShotClassifier: warning about images unlike its (drawn) ones
        from fometa.data import familiar

        return familiar.prepare(self.spec, images, "stand-in")

    def fit(self, images, labels):
        if self.fail_with is not None:
            raise self.fail_with
        x = self.transform(images).reshape(len(images), -1)
        labels = np.asarray(labels)
        self.classes_ = np.unique(labels)[::-1]
        self.means_ = np.stack([x[labels == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, images):
        return self.staged_predict_proba(images, steps=(50,))[50]

    def staged_predict_proba(self, images, steps=(0, 1, 5, 50)):
        x = self.transform(images).reshape(len(images), -1)
        d = ((x[:, None, :] - self.means_[None]) ** 2).sum(axis=-1)
        out = {}
        for s in steps:
            logits = -d * s / 10.0
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            out[s] = e / e.sum(axis=1, keepdims=True)
        return out


def stroke_png(points_list, pad: int | None = None, size: int | None = None) -> bytes:
    """A drawing as the page exports it: strokes (lists of (x, y) in [0, 1]) drawn black on white on a
    ``pad``-pixel canvas with the page's stroke width, downscaled to ``size`` (grey edges), as PNG."""
    from PIL import Image, ImageDraw

    size = size or page_constant("SKETCH_SIZE")
    pad = pad or page_constant("PAD_PIXELS")
    width = round(pad * page_constant("STROKE") / size)
    img = Image.new("L", (pad, pad), 255)
    draw = ImageDraw.Draw(img)
    for points in points_list:
        xy = [(x * pad, y * pad) for x, y in points]
        draw.line(xy, fill=0, width=width, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps, as the canvas draws them
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


#: five characters anyone can tell apart, as strokes in [0, 1] coordinates
GLYPHS = {
    "bar": [[(0.5, 0.15), (0.5, 0.85)]],
    "dash": [[(0.15, 0.5), (0.85, 0.5)]],
    "cross": [[(0.2, 0.2), (0.8, 0.8)], [(0.8, 0.2), (0.2, 0.8)]],
    "box": [[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.25)]],
    "vee": [[(0.2, 0.2), (0.5, 0.8), (0.8, 0.2)]],
}


def glyph(name: str, shift=(0.0, 0.0), scale: float = 1.0):
    """The strokes of one of :data:`GLYPHS`, scaled about the centre and shifted (a second drawing of it)."""
    dx, dy = shift
    return [[(0.5 + (x - 0.5) * scale + dx, 0.5 + (y - 0.5) * scale + dy) for x, y in stroke]
            for stroke in GLYPHS[name]]


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode("ascii")


def png_pixels(url: str) -> np.ndarray:
    """The pixels of a PNG data URL (as the page shows it)."""
    from PIL import Image

    assert url.startswith("data:image/png;base64,"), url[:40]
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


class Client:
    """Requests to a served demo: ``(status, JSON answer)``."""

    def __init__(self, base: str):
        self.base = base

    def get(self, path: str):
        return self._open(urllib.request.Request(self.base + path))

    def get_raw(self, path: str):
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return r.status, r.headers.get_content_type(), r.read()

    def post(self, path: str, payload=None, body: bytes | None = None, kind: str = "application/json"):
        body = json.dumps(payload).encode() if body is None else body
        return self._open(urllib.request.Request(self.base + path, data=body, headers={"Content-Type": kind}))

    def _open(self, request):
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())


# ------------------------------------------------------------------------------------------
# a real browser
# ------------------------------------------------------------------------------------------
#: Chromium's flags for a headless run on a machine without a screen or outside network: no GPU, no
#: sandbox (root in a container), and none of the browser's own connections (updates, sync, QUIC)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1360,1200")
INSTALL = "apt-get install chromium chromium-driver, and pip install selenium"


def find_browser() -> tuple[str, str]:
    """``(browser, driver)`` paths: ``$FOMETA_CHROMIUM`` and ``$FOMETA_CHROMEDRIVER``, else Chromium or
    Chrome and chromedriver on the PATH; ``LookupError`` saying what is missing."""
    import os
    import shutil

    browser = os.environ.get("FOMETA_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("FOMETA_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [what for what, path in (("Chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        raise LookupError(f"no {' and no '.join(missing)} found ({INSTALL}; or set FOMETA_CHROMIUM and "
                          "FOMETA_CHROMEDRIVER)")
    return browser, driver


def start_browser(profile: Path):
    """A headless Chromium driven by Selenium, with a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(driver), options=options)


class Page:
    """The demo's page in a browser: draw, upload, learn, read the result back."""

    def __init__(self, driver, base: str):
        self.driver = driver
        self.base = base

    def open(self):
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(self.base + "/")
        WebDriverWait(self.driver, 30).until(
            lambda d: d.execute_script("return document.body.dataset.ready === 'true'"
                                       " || !document.getElementById('error').hidden"))
        self.assert_no_error()
        return self

    def css(self, selector: str):
        return self.driver.find_element("css selector", selector)

    def draw(self, card: str, strokes, step: int = 6):
        """Draw ``strokes`` (lists of (x, y) in [0, 1]) on ``card``'s sketchpad with the mouse, moving
        at most ``step`` CSS pixels at a time, as a hand would."""
        from selenium.webdriver.common.action_chains import ActionChains

        canvas = self.css(f"#{card} canvas.pad")
        side = canvas.size["width"]
        for stroke in strokes:
            points = [stroke[0]]
            for (x0, y0), (x1, y1) in itertools.pairwise(stroke):
                n = max(1, int(np.hypot(x1 - x0, y1 - y0) * side / step))
                points += [(x0 + (x1 - x0) * t / n, y0 + (y1 - y0) * t / n) for t in range(1, n + 1)]
            offsets = [(round((x - 0.5) * side), round((y - 0.5) * side)) for x, y in points]
            actions = ActionChains(self.driver, duration=5)
            actions.move_to_element_with_offset(canvas, *offsets[0]).click_and_hold()
            for dx, dy in offsets[1:]:
                actions.move_to_element_with_offset(canvas, dx, dy)
            actions.release().perform()
        self.wait_for(f"document.querySelector('#{card} img.seen').hasAttribute('src')")

    def rename(self, card: str, name: str):
        field = self.css(f"#{card} input.name")
        field.clear()
        field.send_keys(name)

    def upload(self, card: str, *paths):
        """Choose files in ``card``'s upload button (classes take several, the query one)."""
        self.css(f"#{card} input[type=file]").send_keys("\n".join(str(p) for p in paths))

    def learn(self, timeout: float = 120) -> dict:
        """Press the button; the result as the page shows it: ``predicted``, ``index``, ``probabilities``
        (the bars' values), ``steps`` (step -> the small bars' values), ``timing`` (its text), ``notes`` (the
        note on images unlike the model's, ``""`` when none is shown)."""
        self.driver.execute_script("document.getElementById('result').hidden = true;"
                                   "document.getElementById('result').dataset.predicted = '';")
        self.css("#learn").click()
        self.wait_for("!document.getElementById('result').hidden"
                      " || !document.getElementById('error').hidden", timeout)
        self.assert_no_error()
        return self.driver.execute_script("""
            const result = document.getElementById('result');
            const values = (rows) => [...rows].map((row) => Number(row.dataset.probability));
            const steps = {};
            for (const box of document.querySelectorAll('#steps .step'))
              steps[box.dataset.step] = values(box.querySelectorAll('.bar-row'));
            return {predicted: result.dataset.predicted, index: Number(result.dataset.predictedIndex),
                    probabilities: values(document.querySelectorAll('#bars .bar-row')), steps,
                    timing: document.getElementById('timing').textContent,
                    notes: (n => n.hidden ? '' : n.textContent)(document.getElementById('notes'))};""")

    def error(self) -> str:
        return self.driver.execute_script(
            "const e = document.getElementById('error'); return e.hidden ? '' : e.textContent;")

    def assert_no_error(self):
        message = self.error()
        assert not message, f"the page shows an error: {message}"

    def wait_for(self, condition: str, timeout: float = 30):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout).until(lambda d: d.execute_script(f"return {condition};"),
                                                  f"waited {timeout} s for {condition}")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page, below the window's bottom too (Chromium's DevTools protocol)."""
        width, height = self.driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
