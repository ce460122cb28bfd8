"""``fometa demo``: draw a few new characters in the browser and watch the meta-learned model learn them.

The interactive page that accompanied the Reptile paper (Nichol, Achiam & Schulman, 2018), served
locally: a sketchpad (or an upload) for each of up to five classes and for a query; one button
fine-tunes a trained model from its meta-learned initialization on the drawings and shows the
query's probability per class, and what the adapted model predicts after 0, 1, 5 and 50 inner
steps. Every drawing goes through the model's own input preprocessing (for Omniglot: black and
white at the scans' size and stroke width, resized as the packer did), and the page shows the
28x28 image the network sees.

* :mod:`fometa.demo.app`: :class:`Demo`, the requests as plain dictionaries (no HTTP);
* :mod:`fometa.demo.server`: the standard library's HTTP server, the page and a JSON API;
* ``index.html``, ``demo.js``, ``demo.css``: the page (no framework, nothing fetched from elsewhere).

From Python::

    from fometa.demo import Demo, make_server
    from fometa.fewshot import FewShotClassifier

    clf = FewShotClassifier("omniglot-5way")
    server = make_server(Demo(clf, "omniglot-5way", ways=clf.ways), "127.0.0.1", 8000)
    server.serve_forever()
"""
from fometa.demo.app import Demo, DemoError
from fometa.demo.server import address, make_server

__all__ = ["Demo", "DemoError", "make_server", "address"]
