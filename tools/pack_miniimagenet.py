#!/usr/bin/env python
"""Pack Mini-ImageNet into one HDF5 file: ``python tools/pack_miniimagenet.py --out FILE.h5 SOURCE``.

A thin wrapper around :mod:`fometa.data.pack_miniimagenet` (``--help`` lists the options).
"""
import sys

from fometa.data.pack_miniimagenet import main

if __name__ == "__main__":
    sys.exit(main())
