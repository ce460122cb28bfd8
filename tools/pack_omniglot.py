#!/usr/bin/env python
"""Pack Omniglot into one HDF5 file: ``python tools/pack_omniglot.py --out FILE.h5 SOURCE...``.

A thin wrapper around :mod:`fometa.data.pack_omniglot` (``--help`` lists the options).
"""
import sys

from fometa.data.pack_omniglot import main

if __name__ == "__main__":
    sys.exit(main())
