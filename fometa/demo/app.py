"""The demo's work, apart from HTTP: check the page's images, show what the model sees, adapt.

:class:`Demo` wraps one :class:`fometa.FewShotClassifier` (any object with its ``fit``,
``predict_proba``, ``staged_predict_proba``, ``transform`` and ``classes_``) and answers the page's
requests as plain dictionaries (the JSON the server sends):

* :meth:`Demo.preview`: one image (a drawing or an upload) as the network input it becomes, a
  28x28 PNG for Omniglot, so the page can show it under the sketchpad;
* :meth:`Demo.adapt`: fine-tune from the meta-learned initialization on the classes' images
  (the model's evaluation settings: Omniglot's 50 inner steps) and give the query's probability per
  class, then, from one more adaptation recorded along the way, after 0, 1, 5 and 50 inner steps;
  with the wall time of both; and ``notes``, a line naming the images unlike those the model was trained
  on (a photograph given to a model of drawings, :mod:`fometa.data.familiar`), whose answer means little.

Images travel as data URLs (``data:image/png;base64,...``: what a canvas's ``toDataURL`` and a
``FileReader`` give). Anything wrong with a request (not an image, too large, blank, too many
classes) raises :class:`DemoError` with one line for the page; the server stays up.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import threading
import time
import warnings

import numpy as np

from fometa.data import DataError
from fometa.data.familiar import UnfamiliarImageWarning

__all__ = ["Demo", "DemoError", "STEPS", "MAX_CLASSES", "MAX_IMAGES_PER_CLASS", "MAX_IMAGE_BYTES", "MAX_PIXELS"]

#: the inner-loop steps after which the page shows the query's probabilities
STEPS = (0, 1, 5, 50)
#: sketchpads on the page (and the most classes one request may hold, if the model has that many outputs)
MAX_CLASSES = 5
#: drawings or uploads per class
MAX_IMAGES_PER_CLASS = 10
#: one image file, decoded from its data URL
MAX_IMAGE_BYTES = 4 * 1024 * 1024
#: width x height of one image (read from its header before any decoding of pixels)
MAX_PIXELS = 4096 * 4096


class DemoError(Exception):
    """A problem with a request: ``str(exc)`` is the one line the page shows; ``status`` the HTTP
    status the server answers with (400, or 413 for an image too large)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(" ".join(str(message).split()))
        self.status = status


class Demo:
    """The few-shot classifier behind the page.

    ``classifier``: a :class:`fometa.FewShotClassifier` (or an object with its interface);
    ``name``: what the page calls it; ``ways``: its number of outputs (the most classes a request may
    hold, capped at :data:`MAX_CLASSES`). One adaptation runs at a time: ``fit`` changes the classifier.
    """

    def __init__(self, classifier, name: str, ways: int):
        self.classifier = classifier
        self.name = name
        self.max_classes = min(int(ways), MAX_CLASSES)
        self._lock = threading.Lock()

    def info(self) -> dict:
        """What the page needs to lay itself out."""
        return {"model": self.name, "classes": self.max_classes, "images_per_class": MAX_IMAGES_PER_CLASS,
                "max_image_bytes": MAX_IMAGE_BYTES, "steps": list(STEPS)}

    def warm_up(self) -> float:
        """One adaptation on two made-up images, so that the page's first one is as quick as the rest
        (the CPU fast path compiles its kernels on first use); returns its wall time in seconds."""

        a, b = np.full((2, 28, 28), 255, dtype=np.uint8)
        a[4:24, 13:15] = 0
        b[13:15, 4:24] = 0
        start = time.perf_counter()
        with self._lock, _quiet():  # two bars may be unlike a model's images (a colour model's): no matter
            self.classifier.fit([a, b], [0, 1])
            self.classifier.staged_predict_proba([a], steps=STEPS)
        return time.perf_counter() - start

    # -- requests --------------------------------------------------------------------------
    def preview(self, payload) -> dict:
        """``{"image": data URL}`` -> ``{"preview": PNG data URL}`` of the network input it becomes, and a
        ``note`` if the image is unlike the model's training images."""
        if not isinstance(payload, dict) or "image" not in payload:
            raise DemoError('a preview request is {"image": "data:image/...;base64,..."}')
        data = decode_image(payload["image"], "the image")
        notes: list[str] = []
        answer = {"preview": self._previews([data], ["the image"], notes)[0]}
        return {**answer, "note": notes[0]} if notes else answer

    def adapt(self, payload) -> dict:
        """Fine-tune on the classes' images, then classify the query.

        ``payload``: ``{"classes": [{"name": str, "images": [data URL, ...]}, ...], "query": data URL}``;
        classes without images are left out (at least two must remain). The answer holds the class
        names in the request's order, the query's ``probabilities`` from the fitted classifier (and
        its ``predicted`` class), ``steps`` (``[{"step": s, "probabilities": [...]}, ...]`` for
        :data:`STEPS`, from one adaptation), the ``previews`` of every image as the network sees it,
        the wall time of fitting and predicting in ``seconds``, and ``notes``: none, or one line naming
        the images unlike those the model was trained on.
        """
        names, images, labels, wheres = self._support(payload)
        if not isinstance(payload.get("query"), str) or not payload["query"]:
            raise DemoError("draw or upload a query image")
        query = decode_image(payload["query"], "the query")
        unlike: list[str] = []
        previews = self._previews(images + [query], wheres + ["the query"], unlike)
        notes = [f"{'; '.join(unlike)}: what {self.name} answers means little"] if unlike else []
        with self._lock, _quiet():  # the previews said it
            start = time.perf_counter()
            self.classifier.fit(images, labels)
            final = self.classifier.predict_proba([query])[0]
            staged = self.classifier.staged_predict_proba([query], steps=STEPS)
            seconds = time.perf_counter() - start
            order = [int(c) for c in self.classifier.classes_]
        if sorted(order) != list(range(len(names))):
            raise RuntimeError(f"the classifier's classes_ {order} are not the labels 0..{len(names) - 1}")
        final = _in_order(final, order)
        rows = [{"step": int(s), "probabilities": _in_order(staged[s][0], order)} for s in STEPS]
        best = max(range(len(names)), key=final.__getitem__)
        per_class, start = [], 0
        for label in range(len(names)):
            count = labels.count(label)
            per_class.append(previews[start:start + count])
            start += count
        return {"classes": names, "probabilities": final, "predicted": names[best], "predicted_index": best,
                "steps": rows, "seconds": round(seconds, 3), "notes": notes,
                "previews": {"classes": per_class, "query": previews[-1]}}

    # -- helpers ---------------------------------------------------------------------------
    def _support(self, payload):
        """(names, image bytes, labels 0..k-1, labels of each image for messages) of the request's classes."""
        if not isinstance(payload, dict) or not isinstance(payload.get("classes"), list):
            raise DemoError('an adaptation request is {"classes": [{"name": ..., "images": [...]}, ...], "query": ...}')
        names: list[str] = []
        images: list[bytes] = []
        labels: list[int] = []
        wheres: list[str] = []
        for i, entry in enumerate(payload["classes"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("images", []), list):
                raise DemoError(f"class {i + 1}: expected {{\"name\": ..., \"images\": [...]}}")
            pictures = entry.get("images", [])
            if not pictures:
                continue
            name = str(entry.get("name") or "").strip() or f"class {i + 1}"
            if len(pictures) > MAX_IMAGES_PER_CLASS:
                raise DemoError(f"{name}: {len(pictures)} images; at most {MAX_IMAGES_PER_CLASS} per class")
            for j, picture in enumerate(pictures):
                where = f"{name}, image {j + 1}"
                images.append(decode_image(picture, where))
                labels.append(len(names))
                wheres.append(where)
            names.append(name)
        if len(names) < 2:
            raise DemoError("draw or upload at least one image for each of two classes or more")
        if len(names) > self.max_classes:
            raise DemoError(f"{len(names)} classes: {self.name} tells apart at most {self.max_classes}")
        return names, images, labels, wheres

    def _previews(self, images, wheres, notes=None) -> list:
        """PNG data URLs of the network inputs; :class:`DemoError` for an unreadable or blank image. Appends to
        ``notes`` a line for each image unlike the model's training images (the classifier's warning)."""

        out = []
        for data, where in zip(images, wheres, strict=True):
            try:
                with self._lock, warnings.catch_warnings(record=True) as caught:  # the lock: filters are global
                    warnings.simplefilter("always", UnfamiliarImageWarning)
                    x = self.classifier.transform([data])[0]
            except DataError as exc:
                raise DemoError(f"{where}: {exc.problem}") from None
            if float(x.max()) == float(x.min()):
                raise DemoError(f"{where} is blank: nothing is drawn on it")
            for w in caught:
                if isinstance(w.message, UnfamiliarImageWarning) and notes is not None:
                    notes += [f"{where} is unlike the {w.message.trained_on} {self.name} was trained on ({reason})"
                              for _, _, reason in w.message.found]
            out.append(png_data_url(x))
        return out


@contextlib.contextmanager
def _quiet():
    """Within the block (under the demo's lock: warning filters are the process's), the classifier's warnings about
    unlike images are not shown: the page has them as notes already."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnfamiliarImageWarning)
        yield


def decode_image(url, where: str) -> bytes:
    """The bytes of an image data URL (``data:<type>;base64,<data>``), checked to be a readable image of at most
    :data:`MAX_IMAGE_BYTES` and :data:`MAX_PIXELS`; :class:`DemoError` naming ``where`` otherwise."""
    if not isinstance(url, str) or not url:
        raise DemoError(f"{where}: expected an image as a data URL")
    head, _, body = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise DemoError(f"{where}: expected a base64 data URL (data:image/...;base64,...)")
    if len(body) * 3 // 4 > MAX_IMAGE_BYTES + 2:
        raise DemoError(f"{where} is too large: about {len(body) * 3 // 4 / 2**20:.1f} MiB; "
                        f"at most {MAX_IMAGE_BYTES / 2**20:.0f} MiB per image", status=413)
    try:
        data = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise DemoError(f"{where}: not valid base64") from None
    if len(data) > MAX_IMAGE_BYTES:
        raise DemoError(f"{where} is too large: {len(data) / 2**20:.1f} MiB; "
                        f"at most {MAX_IMAGE_BYTES / 2**20:.0f} MiB per image", status=413)
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover - the demo extra brings Pillow
        raise DemoError("reading images needs Pillow (pip install 'fometa[demo]')", status=500) from None
    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only: no pixel is decoded yet
            width, height = img.size
    except UnidentifiedImageError:
        raise DemoError(f"{where} is not an image (or not in a format Pillow reads)") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise DemoError(f"{where} is not a readable image: {exc}") from None
    if width * height > MAX_PIXELS:
        raise DemoError(f"{where} is too large: {width}x{height} pixels; at most {MAX_PIXELS:,} in all",
                        status=413)
    return data


def png_data_url(x) -> str:
    """A network input (values in [0, 1], ``(H, W)`` or ``(H, W, 3)``) as a PNG data URL, pixel for pixel."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _in_order(probabilities, order) -> list:
    """One query's probabilities, column ``j`` belonging to label ``order[j]``, as a list indexed by label."""
    out = [0.0] * len(order)
    for column, label in enumerate(order):
        out[label] = float(probabilities[column])
    return out
