"""Write the sample images that ship with fometa: ``fometa/samples/omniglot.zip`` and its licence notice.

Five Omniglot characters of the paper split's *test* characters (seed 0, 1200 training characters: none
of them was seen in meta-training), each from another alphabet of the evaluation set, with one drawing
as the support set (``support/<alphabet>-<character>/``) and another as a query
(``query/<alphabet>-<character>.png``), copied byte for byte from the official ``images_evaluation.zip``
(Lake et al. 2015, MIT licence: the notice goes beside them, ``omniglot-LICENSE.txt``, and into the
zip). ``fometa samples omniglot --out DIR`` unpacks them; the README's predict example runs on them.
Files in the zip are sorted and dated 1980-01-01, so the same inputs give the same zip.

    python tools/make_samples.py path/to/images_background.zip path/to/images_evaluation.zip
"""
from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np

from fometa.data import omniglot_paper_split

OUT = Path(__file__).resolve().parents[1] / "fometa" / "samples"
NOTICE = """Images from the Omniglot data set (Lake, Salakhutdinov & Tenenbaum, "Human-level concept
learning through probabilistic program induction", Science 2015), github.com/brendenlake/omniglot,
copied unchanged from its python/images_evaluation.zip. Five characters of the paper split's test
characters (seed 0), one drawing each as the support set and another as the query.

The MIT License (MIT)

Copyright (c) 2015 Brenden Lake

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zips", nargs=2, metavar="ZIP", help="images_background.zip and images_evaluation.zip")
    ap.add_argument("--seed", type=int, default=0, help="which test characters and drawings (default 0)")
    args = ap.parse_args(argv)
    drawings = {}  # (set, alphabet, character) -> sorted members
    for z in args.zips:
        with zipfile.ZipFile(z) as f:
            for name in f.namelist():
                parts = name.split("/")
                if len(parts) == 4 and parts[3].endswith(".png"):
                    drawings.setdefault((parts[0], parts[1], parts[2]), []).append(name)
    chars = sorted(drawings, key=lambda k: (k[1], k[2]))
    _, test = omniglot_paper_split([a for _, a, _ in chars], [c for _, _, c in chars], 0, 1200)
    rng = np.random.default_rng(args.seed)
    picked, alphabets = [], set()
    for i in rng.permutation(test):
        key = chars[i]
        if key[0] == "images_evaluation" and key[1] not in alphabets:
            picked.append(key)
            alphabets.add(key[1])
        if len(picked) == 5:
            break
    zips = {Path(z).stem: z for z in args.zips}
    files = {"LICENSE.txt": NOTICE.encode()}
    with zipfile.ZipFile(zips["images_evaluation"]) as f:
        for key in picked:
            members = sorted(drawings[key])
            s, q = (members[j] for j in rng.choice(len(members), size=2, replace=False))
            label = f"{key[1]}-{key[2]}"
            files[f"support/{label}/{Path(s).name}"] = f.read(s)
            files[f"query/{label}.png"] = f.read(q)
    with zipfile.ZipFile(OUT / "omniglot.zip", "w", zipfile.ZIP_DEFLATED) as out:
        for name in sorted(files):
            out.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), files[name])
    (OUT / "omniglot-LICENSE.txt").write_text(NOTICE)
    print(f"wrote {len(picked)} characters to {OUT / 'omniglot.zip'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
