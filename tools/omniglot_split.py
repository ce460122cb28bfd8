#!/usr/bin/env python
"""Write the paper's Omniglot character split as JSON:
``python tools/omniglot_split.py --packed datasets/omniglot.h5 --seed 0 --out
datasets/splits/omniglot_paper_seed0.json``.

The split is :func:`fometa.data.omniglot_paper_split`, the reference code's (openai/supervised-reptile,
``random.seed(seed)`` then ``split_dataset(read_dataset(...))``): characters sorted by (alphabet,
character) name, shuffled by ``random.Random(seed).shuffle``, the first 1200 for training. The JSON lists
``"Alphabet/characterNN"`` names; ``load_omniglot(..., split_file=...)`` reads it back.
"""
import argparse
import json
import sys
from pathlib import Path

from fometa.data import DataError, omniglot_paper_split, open_packed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--packed", required=True, help="a packed Omniglot file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-characters", type=int, default=1200)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    try:
        f, _ = open_packed(args.packed, "omniglot")
        with f:
            alphabets, characters = f["alphabet"].asstr()[()], f["character"].asstr()[()]
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    train, test = omniglot_paper_split(alphabets, characters, args.seed, args.train_characters)
    names = [f"{a}/{c}" for a, c in zip(alphabets, characters, strict=True)]
    spec = {
        "protocol": "paper", "seed": args.seed, "train_characters": args.train_characters,
        "rule": "openai/supervised-reptile's split_dataset(read_dataset(...)) after random.seed(seed): characters "
                "sorted by (alphabet, character) name (Python string order), shuffled by "
                "random.Random(seed).shuffle, first train_characters train; each list in packed-file order",
        "train": [names[i] for i in train], "test": [names[i] for i in test],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(spec, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
