"""The demo page in a real headless Chromium: strokes drawn with the mouse, files uploaded, the button
pressed, the result read back from the page.

With the stand-in classifier (:mod:`demo_helpers`) the page's own work is checked anywhere a browser
is: drawing, what the network sees, the result's layout, bad uploads. With the trained Omniglot
5-way model (the shipped one, or ``$FOMETA_DEMO_MODEL``) the demo must recognise new characters:
five drawn ones, and five raw Omniglot test characters uploaded (``$FOMETA_DATA_DIR``), a query being
a second drawing of one of them, right on at least 4 of 5 tries each. Both save a screenshot; the
drawn one is also copied to ``$FOMETA_DEMO_SCREENSHOT`` when set (``docs/demo.png`` is made so).
"""
from __future__ import annotations

import base64
import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
from demo_helpers import GLYPHS, Page, glyph, png_pixels

NAMES = list(GLYPHS)
#: the query of each try: the class it is a second drawing of, and how it differs (shift, scale)
QUERIES = [("cross", (0.05, -0.04), 0.85), ("vee", (-0.06, 0.03), 1.1), ("bar", (0.08, 0.0), 0.9),
           ("box", (-0.03, -0.05), 0.8), ("dash", (0.0, 0.07), 1.15)]
#: the stand-in compares pixels: its queries are near copies
NEAR_COPY = ("vee", (0.01, 0.01), 1.0)


def _drawing_widths(url: str) -> float:
    """Median stroke width (pixels) of a drawing as the page sends it, after the black-and-white step."""
    from PIL import Image
    from test_server import _ink_widths

    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("L")
    assert img.size == (105, 105), f"the page sent a {img.size} drawing"
    return float(np.median(_ink_widths(np.asarray(img) >= 128)))


def _draw_task(page: Page, query):
    page.open()
    for i, name in enumerate(NAMES):
        page.rename(f"class-{i}", name)
        page.draw(f"class-{i}", glyph(name))
    target, shift, scale = query
    page.draw("query", glyph(target, shift=shift, scale=scale))
    return page.learn()


def _save_screenshot(page: Page, tmp_path: Path, name: str, keep: bool = False) -> Path:
    """The page as a PNG in ``tmp_path``; ``keep``: copied to ``$FOMETA_DEMO_SCREENSHOT`` too, if set."""
    shot = page.screenshot(tmp_path / name)
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", f"{shot} is not a PNG"
    if keep and os.environ.get("FOMETA_DEMO_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["FOMETA_DEMO_SCREENSHOT"])
    return shot


# ------------------------------------------------------------------------------------------
# the page itself (stand-in classifier)
# ------------------------------------------------------------------------------------------
def test_drawing_learning_and_the_result_on_the_page(page):
    result = _draw_task(page, ("cross", (0.01, -0.01), 1.0))
    assert result["predicted"] == "cross" and result["index"] == 2, result
    p = np.array(result["probabilities"])
    assert p.shape == (5,) and abs(p.sum() - 1) < 1e-3 and p.argmax() == 2, p
    assert sorted(result["steps"]) == ["0", "1", "5", "50"], result["steps"].keys()
    np.testing.assert_allclose(result["steps"]["0"], 0.2, err_msg="the stand-in's step 0 is uniform")
    assert result["timing"].startswith("Fine-tuned on 5 images"), result["timing"]
    assert result["notes"] == "", "drawings are like the model's images: no note"
    # what the network sees: each drawing as a 28x28 black-and-white image, shown beside it
    shown = page.driver.execute_script(
        "return [...document.querySelectorAll('img.seen')].map((i) => [i.src, i.naturalWidth, i.naturalHeight]);")
    assert len(shown) == 6, f"{len(shown)} previews for 5 classes and the query"
    for url, width, height in shown:
        pixels = png_pixels(url)
        assert (width, height) == (28, 28) and pixels.shape == (28, 28), (width, height, pixels.shape)
        assert set(np.unique(pixels)) == {0, 255}, f"not black and white: {np.unique(pixels)}"
    drawn = page.driver.execute_script("return state.classes.map((c) => c.pad.empty);")
    assert drawn == [False] * 5, "learning leaves the drawings on their pads"


def test_drawings_have_the_scans_stroke_width(page):
    """A stroke drawn with the mouse is sent at the scans' size (105x105) about 5 pixels wide after the
    black-and-white step: as wide as Omniglot's scanned strokes."""
    page.open()
    page.draw("class-0", glyph("box"))
    page.draw("query", glyph("vee"))
    drawings = page.driver.execute_script("return [state.classes[0].pending.image, state.query.image];")
    widths = [_drawing_widths(url) for url in drawings]
    assert all(4 <= w <= 6 for w in widths), f"median stroke widths {widths}; Omniglot's scans: 5"


def test_keep_and_remove_examples(page):
    page.open()
    page.draw("class-0", glyph("bar"))
    page.css("#class-0 .keep").click()
    page.wait_for("document.querySelectorAll('#class-0 .examples img').length === 1")
    page.draw("class-0", glyph("bar", shift=(0.1, 0)))
    page.css("#class-0 .keep").click()
    page.wait_for("document.querySelectorAll('#class-0 .examples img').length === 2")
    page.css("#class-0 .example button").click()
    page.wait_for("document.querySelectorAll('#class-0 .examples img').length === 1")
    assert page.driver.execute_script("return state.classes[0].examples.length") == 1


def test_bad_uploads_get_a_message_on_the_page_and_the_page_goes_on(page, tmp_path):
    page.open()
    text = tmp_path / "notes.txt"
    text.write_text("not an image at all")
    page.upload("class-0", text)
    page.wait_for("!document.getElementById('error').hidden")
    assert "'notes.txt'" in page.error() and "is not an image" in page.error(), page.error()

    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(5 * 2**20))
    page.upload("class-1", big)
    page.wait_for("document.getElementById('error').textContent.includes('huge.png')")
    assert "too large" in page.error(), page.error()

    from PIL import Image

    wide = tmp_path / "wide.png"
    Image.new("1", (6000, 4000), 1).save(wide)  # a small file of too many pixels: the server refuses it
    page.upload("query", wide)
    page.wait_for("document.getElementById('error').textContent.includes('wide.png')")
    assert "6000x4000 pixels" in page.error(), page.error()

    assert page.driver.execute_script("return state.classes.every((c) => c.examples.length === 0)")
    result = _draw_task(page, NEAR_COPY)  # and the page still works
    assert result["predicted"] == "vee", result


def test_a_photograph_gets_a_note_under_the_answer(page, tmp_path):
    from PIL import Image

    photo = tmp_path / "dog.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, size=(90, 120, 3), dtype=np.uint8)).save(photo)
    page.open()
    for i, name in enumerate(NAMES[:2]):
        page.draw(f"class-{i}", glyph(name))
    page.upload("query", photo)
    page.wait_for("document.querySelector('#query img.seen').hasAttribute('src')")
    result = page.learn()
    assert result["notes"].startswith("the query is unlike the black-and-white drawings stand-in was trained on"), \
        result["notes"]


def test_learning_without_enough_classes_or_a_query_says_so(page):
    page.open()
    page.draw("class-0", glyph("bar"))
    page.css("#learn").click()
    page.wait_for("!document.getElementById('error').hidden")
    assert "draw or upload a query image" in page.error(), page.error()
    page.draw("query", glyph("bar"))
    page.css("#learn").click()
    page.wait_for("document.getElementById('error').textContent.includes('two classes')")


# ------------------------------------------------------------------------------------------
# the trained model
# ------------------------------------------------------------------------------------------
def test_the_trained_model_learns_five_drawn_characters(browser, real_page_url, tmp_path):
    page = Page(browser, real_page_url)
    outcomes = []
    for query in QUERIES:
        result = _draw_task(page, query)
        outcomes.append((query[0], result["predicted"], max(result["probabilities"]), result["timing"]))
        if query is QUERIES[0]:
            _save_screenshot(page, tmp_path, "demo-drawn.png", keep=True)
    right = sum(target == predicted for target, predicted, *_ in outcomes)
    print("\n".join(f"query {t}: predicted {p} ({q:.1%}); {timing}" for t, p, q, timing in outcomes))
    assert right >= 4, f"right on {right} of 5 tries: {outcomes}"


def test_the_trained_model_learns_five_uploaded_omniglot_test_characters(browser, real_page_url,
                                                                         omniglot_test_characters, tmp_path):
    archive, characters = omniglot_test_characters
    names = sorted(characters)
    rng = np.random.default_rng(24)
    page = Page(browser, real_page_url)
    outcomes = []
    with zipfile.ZipFile(archive) as z:
        for attempt in range(5):
            chosen = [names[i] for i in rng.choice(len(names), size=5, replace=False)]
            target = int(rng.integers(5))
            folder = tmp_path / f"try{attempt}"
            folder.mkdir()
            page.open()
            for i, character in enumerate(chosen):
                support, second = (characters[character][j] for j in rng.choice(20, size=2, replace=False))
                path = folder / Path(support).name
                path.write_bytes(z.read(support))
                page.upload(f"class-{i}", path)
                if i == target:
                    query = folder / Path(second).name
                    query.write_bytes(z.read(second))
            for i in range(5):
                page.wait_for(f"document.querySelectorAll('#class-{i} .examples img').length === 1")
            page.upload("query", query)
            page.wait_for("document.querySelector('#query img.seen').hasAttribute('src')")
            result = page.learn()
            outcomes.append((chosen[target], chosen[result["index"]], max(result["probabilities"])))
            if attempt == 0:
                _save_screenshot(page, tmp_path, "demo-uploaded.png")
    right = sum(target == predicted for target, predicted, _ in outcomes)
    print("\n".join(f"query {t}: predicted {p} ({q:.1%})" for t, p, q in outcomes))
    assert right >= 4, f"right on {right} of 5 tries: {outcomes}"
