"""Fixtures for the demo's tests: a stand-in classifier and a demo served on it; a headless Chromium;
the real Omniglot 5-way model (skipped while it cannot be had) and raw Omniglot test images found
through ``FOMETA_DATA_DIR`` (skipped without them)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("PIL")

from demo_helpers import Client, NearestMean, Page, find_browser, start_browser  # noqa: E402 - after the skip without Pillow

REPO = Path(__file__).resolve().parents[2]
#: a run folder, checkpoint file or shipped name to use instead of the shipped omniglot-5way model
MODEL_ENV = "FOMETA_DEMO_MODEL"
DATA_DIR = Path(os.environ.get("FOMETA_DATA_DIR") or "FOMETA_DATA_DIR-is-not-set")
DATA_HOW = "set FOMETA_DATA_DIR to the folder holding omniglot/images_evaluation.zip to run it"


def serve(classifier, name: str):
    """``(server, thread)``: a demo of ``classifier`` on a free local port, served by a daemon thread."""
    from fometa.demo import Demo, make_server

    demo = Demo(classifier, name, ways=classifier.ways)
    demo.warm_up()
    server = make_server(demo, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def stop(server, thread):
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def classifier():
    return NearestMean()


@pytest.fixture
def served(classifier):
    """A demo of the stand-in classifier served on a free local port: a :class:`Client`."""
    from fometa.demo import address

    server, thread = serve(classifier, "stand-in")
    try:
        yield Client(address(server).rstrip("/"))
    finally:
        stop(server, thread)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Chromium driven by Selenium (skips, saying what to install, where none can be had)."""
    try:
        import selenium  # noqa: F401 - imported to see that it is installed
    except ImportError:
        pytest.skip("the browser tests need Selenium (pip install selenium) and Chromium with chromedriver")
    try:
        find_browser()
    except LookupError as exc:
        pytest.skip(str(exc))
    from selenium.common.exceptions import WebDriverException

    try:
        driver = start_browser(tmp_path_factory.mktemp("chromium-profile"))
    except WebDriverException as exc:
        pytest.skip(f"Chromium did not start: {exc.msg or exc}")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, served):
    """The demo page of the stand-in classifier, opened in the browser."""
    return Page(browser, served.base).open()


@pytest.fixture(scope="session")
def real_model():
    """``(classifier, name)``: the shipped omniglot-5way model, or ``$FOMETA_DEMO_MODEL`` (skips while
    neither can be loaded)."""
    pytest.importorskip("h5py")
    from fometa import pretrained
    from fometa.fewshot import FewShotClassifier

    name = os.environ.get(MODEL_ENV) or "omniglot-5way"
    try:
        clf = FewShotClassifier(name).load()
    except (pretrained.RegistryError, OSError, ValueError) as exc:
        pytest.skip(f"no trained Omniglot 5-way model to test with ({exc}); the shipped omniglot-5way model "
                    f"is used once installed, or set {MODEL_ENV} to a run folder of an Omniglot 5-way run")
    return clf, name


@pytest.fixture(scope="session")
def real_page_url(real_model):
    """The address of a demo of the real model (served for the whole session)."""
    from fometa.demo import address

    server, thread = serve(*real_model)
    try:
        yield address(server).rstrip("/")
    finally:
        stop(server, thread)


@pytest.fixture(scope="session")
def omniglot_test_characters():
    """``(zip path, {"Alphabet/characterNN": [member names of its 20 PNGs, sorted]})`` for the raw
    images of the evaluation zip whose characters are in the paper split's test set (seed 0: what
    the Omniglot models are trained without)."""
    import json
    import zipfile

    archive = DATA_DIR / "omniglot" / "images_evaluation.zip"
    if not archive.is_file():
        pytest.skip(f"raw Omniglot images not found ({archive}): {DATA_HOW}")
    split = json.loads((REPO / "datasets" / "splits" / "omniglot_paper_seed0.json").read_text())
    test = set(split["test"])
    characters: dict[str, list[str]] = {}
    with zipfile.ZipFile(archive) as z:
        for member in sorted(z.namelist()):
            parts = member.split("/")
            if len(parts) == 4 and parts[-1].endswith(".png") and f"{parts[1]}/{parts[2]}" in test:
                characters.setdefault(f"{parts[1]}/{parts[2]}", []).append(member)
    assert len(characters) > 100, f"only {len(characters)} test characters in {archive}"
    return archive, characters
