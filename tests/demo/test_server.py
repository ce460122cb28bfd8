"""The demo's server without a browser: its pages and endpoints, a drawn stroke's way to the network,
and bad requests answered with a message while the server goes on serving."""
from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from demo_helpers import GLYPHS, STATIC, data_url, glyph, page_constant, png_pixels, stroke_png


def _good_request(names=("bar", "dash", "cross", "box", "vee"), query="cross"):
    classes = [{"name": n, "images": [data_url(stroke_png(glyph(n)))]} for n in names]
    return {"classes": classes, "query": data_url(stroke_png(glyph(query, shift=(0.04, -0.03), scale=0.9)))}


def _ink_widths(white: np.ndarray) -> np.ndarray:
    """Per ink pixel, the shortest of its ink runs along the rows, the columns and the two diagonals
    (in pixels): the local stroke width. Omniglot's 105x105 scans: median 5 (10th-90th percentile of
    the per-drawing medians 5 to 5.7)."""
    ink = ~white

    def runs(a):
        out = np.zeros(a.shape, dtype=float)
        for i, row in enumerate(a):
            edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
            for start, stop in zip(edges[::2], edges[1::2], strict=True):
                out[i, start:stop] = stop - start
        return out

    def diagonal_runs(a):
        n, out = a.shape[0], np.zeros(a.shape, dtype=float)
        for k in range(-n + 1, n):
            i = np.arange(max(0, -k), min(n, n - k))
            out[i, i + k] = runs(a[i, i + k][None])[0] * np.sqrt(2)
        return out

    directions = [runs(ink), runs(ink.T).T, diagonal_runs(ink), diagonal_runs(ink[:, ::-1])[:, ::-1]]
    return np.min(directions, axis=0)[ink]


# ------------------------------------------------------------------------------------------
# the page and its files
# ------------------------------------------------------------------------------------------
def test_page_and_its_files_are_served(served):
    status, kind, body = served.get_raw("/")
    assert (status, kind) == (200, "text/html"), (status, kind)
    assert b'<script src="demo.js">' in body and b'href="demo.css"' in body, body[:300]
    for path, expected in (("/demo.js", "text/javascript"), ("/demo.css", "text/css")):
        status, kind, body = served.get_raw(path)
        assert (status, kind) == (200, expected) and len(body) > 500, (path, status, kind, len(body))


def test_page_fetches_nothing_from_elsewhere():
    """The page works offline: no address outside the server in its HTML, CSS or script."""
    for name in ("index.html", "demo.js", "demo.css"):
        text = (STATIC / name).read_text()
        assert "http://" not in text and "https://" not in text and "//" + "cdn" not in text, (
            f"{name} names an outside address")


def test_info(served):
    status, info = served.get("/api/info")
    assert status == 200, info
    assert info == {"model": "stand-in", "classes": 5, "images_per_class": 10, "max_image_bytes": 4 * 2**20,
                    "steps": [0, 1, 5, 50]}, info


def test_unknown_paths_are_404_with_a_message(served):
    assert served.get("/etc/passwd") == (404, {"error": "no such page: /etc/passwd"})
    status, answer = served.post("/api/nothing", {})
    assert status == 404 and "no such endpoint" in answer["error"], (status, answer)


# ------------------------------------------------------------------------------------------
# a drawn stroke on its way to the network
# ------------------------------------------------------------------------------------------
def test_a_drawn_stroke_has_the_scans_stroke_width():
    """The page draws with Omniglot's stroke width: after the black-and-white step at the scans'
    size, a drawn stroke is about 5 pixels wide, as the scanned strokes are."""
    from PIL import Image

    size = page_constant("SKETCH_SIZE")
    assert size == 105, "drawings are exported at the size of Omniglot's scans"
    img = Image.open(io.BytesIO(stroke_png(glyph("box") + glyph("cross"))))
    assert img.size == (size, size)
    bilevel = np.asarray(img) >= 128
    assert 0.03 < (~bilevel).mean() < 0.25, f"ink fraction {(~bilevel).mean():.3f}"
    width = np.median(_ink_widths(bilevel))
    assert 4 <= width <= 6, f"median stroke width {width:.2f} px at {size}x{size}; Omniglot's scans: 5"


def test_preview_is_the_network_input_of_the_drawing(served, classifier):
    """The preview of a drawing is, pixel for pixel, what the classifier's preprocessing makes of it:
    28x28, black ink (0) on white (255), nothing grey, the stroke where it was drawn."""
    png = stroke_png([[(0.5, 0.1), (0.5, 0.9)]])  # a vertical bar in the middle
    status, answer = served.post("/api/preview", {"image": data_url(png)})
    assert status == 200, answer
    pixels = png_pixels(answer["preview"])
    assert pixels.shape == (28, 28) and pixels.dtype == np.uint8, (pixels.shape, pixels.dtype)
    expected = np.rint(classifier.transform([png])[0] * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected, err_msg="the preview differs from the network input")
    assert set(np.unique(pixels)) == {0, 255}, f"values {np.unique(pixels)}: not black and white"
    ink_columns = np.flatnonzero((pixels == 0).any(axis=0))
    assert ink_columns.min() >= 12 and ink_columns.max() <= 15, f"the bar is in columns {ink_columns}"
    assert 1 <= len(ink_columns) <= 3, f"a 6/105-wide stroke is 1-3 pixels wide at 28x28, got {len(ink_columns)}"
    ink_rows = np.flatnonzero((pixels == 0).any(axis=1))
    assert ink_rows.min() <= 4 and ink_rows.max() >= 23, f"the bar spans rows {ink_rows.min()}..{ink_rows.max()}"


def test_an_upload_of_another_size_and_mode_is_prepared_too(served):
    from PIL import Image

    img = Image.new("RGBA", (300, 200), (0, 0, 0, 0))  # transparent paper: white for the network
    img.paste((20, 20, 200, 255), (100, 50, 200, 150))  # a dark blue square
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    status, answer = served.post("/api/preview", {"image": data_url(buf.getvalue())})
    assert status == 200, answer
    pixels = png_pixels(answer["preview"])
    assert pixels.shape == (28, 28) and (pixels == 0).any() and (pixels == 255).any(), np.unique(pixels)


# ------------------------------------------------------------------------------------------
# adaptation
# ------------------------------------------------------------------------------------------
def test_adapt_answers_probabilities_per_class_and_per_step(served):
    status, answer = served.post("/api/adapt", _good_request(query="cross"))
    assert status == 200, answer
    assert answer["classes"] == list(GLYPHS), answer["classes"]
    assert answer["predicted"] == "cross" and answer["predicted_index"] == 2, answer["probabilities"]
    p = np.array(answer["probabilities"])
    assert p.shape == (5,) and abs(p.sum() - 1) < 1e-6 and p.argmax() == 2, p
    assert [row["step"] for row in answer["steps"]] == [0, 1, 5, 50]
    np.testing.assert_allclose(answer["steps"][0]["probabilities"], 0.2, err_msg="step 0 of the stand-in is uniform")
    assert answer["steps"][-1]["probabilities"] == answer["probabilities"]
    assert [len(c) for c in answer["previews"]["classes"]] == [1] * 5
    assert png_pixels(answer["previews"]["query"]).shape == (28, 28)
    assert 0 <= answer["seconds"] < 60, answer["seconds"]


def test_adapt_skips_empty_classes_and_keeps_several_images_per_class(served):
    request = _good_request(names=("bar", "dash", "box"), query="dash")
    request["classes"][0]["images"].append(data_url(stroke_png(glyph("bar", shift=(0.05, 0)))))
    request["classes"].insert(1, {"name": "unused", "images": []})
    status, answer = served.post("/api/adapt", request)
    assert status == 200, answer
    assert answer["classes"] == ["bar", "dash", "box"] and answer["predicted"] == "dash", answer
    assert [len(c) for c in answer["previews"]["classes"]] == [2, 1, 1]


def test_a_nameless_class_is_named_by_its_place(served):
    request = _good_request(names=("bar", "dash"), query="bar")
    request["classes"][1]["name"] = "  "
    status, answer = served.post("/api/adapt", request)
    assert status == 200 and answer["classes"] == ["bar", "class 2"], answer


# ------------------------------------------------------------------------------------------
# bad requests: a message, a 4xx status, and the server still serving
# ------------------------------------------------------------------------------------------
def _png_of_size(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (width, height), 1).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _replace_first_image(request, url):
    request["classes"][0]["images"][0] = url
    return request


BAD = [
    ("not an image", lambda r: _replace_first_image(r, data_url(b"hello, I am a text file", "text/plain")),
     400, "bar, image 1 is not an image"),
    ("a truncated PNG", lambda r: _replace_first_image(r, data_url(stroke_png(glyph("bar"))[:60])),
     400, "bar, image 1: not a readable image"),
    ("not base64", lambda r: _replace_first_image(r, "data:image/png;base64,@@@@"), 400, "not valid base64"),
    ("not a data URL", lambda r: _replace_first_image(r, "http://example.org/a.png"),
     400, "expected a base64 data URL"),
    ("too many bytes", lambda r: _replace_first_image(r, data_url(b"\x89PNG" + bytes(4 * 2**20 + 10))),
     413, "bar, image 1 is too large"),
    ("too many pixels", lambda r: _replace_first_image(r, data_url(_png_of_size(5000, 4000))),
     413, "5000x4000 pixels"),
    ("blank drawing", lambda r: _replace_first_image(r, data_url(_png_of_size(105, 105))),
     400, "bar, image 1 is blank"),
    ("blank query", lambda r: {**r, "query": data_url(_png_of_size(105, 105))}, 400, "the query is blank"),
    ("no query", lambda r: {**r, "query": ""}, 400, "draw or upload a query image"),
    ("one class", lambda r: {**r, "classes": r["classes"][:1]}, 400, "at least one image for each of two classes"),
    ("six classes", lambda r: {**r, "classes": r["classes"] + r["classes"][:1]}, 400, "6 classes"),
    ("eleven images", lambda r: {**r, "classes": [{"name": "bar", "images": r["classes"][0]["images"] * 11}]
                                 + r["classes"][1:]}, 400, "at most 10 per class"),
    ("not a request", lambda r: [1, 2, 3], 400, "an adaptation request is"),
]


@pytest.mark.parametrize("what, spoil, status, message", BAD, ids=[b[0] for b in BAD])
def test_bad_adaptation_requests_get_a_message(served, what, spoil, status, message):
    got, answer = served.post("/api/adapt", spoil(_good_request()))
    assert got == status and message in answer.get("error", ""), f"{what}: {got} {answer}"
    got, answer = served.post("/api/adapt", _good_request())
    assert got == 200 and answer["predicted"] == "cross", f"after {what}, a good request got {got} {answer}"


def test_bad_preview_requests_get_a_message(served):
    cases = [({"image": data_url(b"GIF89a not really")}, 400, "the image is not"),
             ({"picture": "x"}, 400, "a preview request is"),
             ({"image": data_url(_png_of_size(105, 105))}, 400, "the image is blank")]
    for payload, status, message in cases:
        got, answer = served.post("/api/preview", payload)
        assert got == status and message in answer["error"], (payload.keys(), got, answer)


def test_bodies_that_are_not_json_or_not_declared_json_are_refused(served):
    got, answer = served.post("/api/adapt", body=b"{not json")
    assert got == 400 and "not JSON" in answer["error"], answer
    got, answer = served.post("/api/adapt", body=b"{}", kind="text/plain")
    assert got == 415 and "application/json" in answer["error"], answer
    assert served.get("/api/info")[0] == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(served):
    """A declared length over the limit is answered at once (413) without waiting for the body."""
    from fometa.demo.server import MAX_BODY_BYTES

    host, port = served.base.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(f"POST /api/adapt HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {10 * MAX_BODY_BYTES}\r\n\r\n{{".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"the request is too large" in body, body
    assert served.get("/api/info")[0] == 200


def test_a_fault_of_the_classifier_is_a_500_with_a_message_and_the_server_goes_on(served, classifier, capfd):
    classifier.fail_with = FloatingPointError("overflow in the inner loop")
    got, answer = served.post("/api/adapt", _good_request())
    assert got == 500 and "FloatingPointError: overflow in the inner loop" in answer["error"], answer
    assert "Traceback" in capfd.readouterr().err, "the server's output keeps the traceback"
    classifier.fail_with = None
    got, answer = served.post("/api/adapt", _good_request())
    assert got == 200, answer


def test_warm_up_adapts_once_and_leaves_the_page_answers_unchanged(served, classifier):
    from fometa.demo import Demo

    before = served.post("/api/adapt", _good_request())[1]
    seconds = Demo(classifier, "stand-in", ways=5).warm_up()
    assert 0 <= seconds < 60 and list(classifier.classes_) == [1, 0], "the warm-up fits two made-up classes"
    after = served.post("/api/adapt", _good_request())[1]
    assert after["probabilities"] == before["probabilities"], "a warm-up changed a later answer"


# ------------------------------------------------------------------------------------------
# images unlike the model's: a note on the page
# ------------------------------------------------------------------------------------------
def _photo_png(seed: int = 0) -> bytes:
    """Colour noise: mid-grey and coloured all over, nothing like a drawing."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_drawings_get_no_note_and_a_photograph_gets_one(served):
    status, answer = served.post("/api/adapt", _good_request())
    assert status == 200 and answer["notes"] == [], answer.get("notes")
    request = _good_request()
    request["query"] = data_url(_photo_png())
    request["classes"][1]["images"].append(data_url(_photo_png(1)))
    status, answer = served.post("/api/adapt", request)
    assert status == 200, answer
    (note,) = answer["notes"]
    assert note.startswith("dash, image 2 is unlike the black-and-white drawings stand-in was trained on (")
    assert "; the query is unlike the black-and-white drawings" in note and note.endswith("means little")
    status, answer = served.post("/api/preview", {"image": data_url(_photo_png())})
    assert status == 200 and answer["note"].startswith("the image is unlike the black-and-white drawings"), answer
    status, answer = served.post("/api/preview", {"image": data_url(stroke_png(glyph("bar")))})
    assert status == 200 and "note" not in answer


def test_the_page_shows_the_notes():
    js, html = (STATIC / "demo.js").read_text(), (STATIC / "index.html").read_text()
    assert 'id="notes"' in html and 'getElementById("notes")' in js and "answer.notes" in js
