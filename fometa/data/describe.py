"""What a packed file holds, as one JSON-plain dict (``fometa data info FILE``)."""
from __future__ import annotations

import numpy as np

from fometa.data._io import DataError
from fometa.data.images import ImageSpec
from fometa.data.schema import check_packed, open_packed, reading, required_datasets

__all__ = ["describe_packed"]


def describe_packed(path, verify: bool = False) -> dict:
    """The file's root attributes (JSON decoded) and, for every kind:

    * ``split_sizes``: ``{name: {"classes", "examples", "examples_per_class": {"min", "max"}}}`` per
      split (for Omniglot its two sets, ``background`` and ``evaluation``: the loader's protocol
      decides which characters train);
    * ``example_shape``: one example's shape (``[28, 28]``, ``[84, 84, 3]``, ...);
    * ``image_spec``: :meth:`ImageSpec.for_packed` as a dict, the recipe for new inputs;
    * ``datasets``: ``{name: {"dtype", "shape", "sha256"}}``.

    ``verify``: recompute every dataset's SHA-256 first (:func:`~fometa.data.check_packed`) and add
    ``verified`` (true or false) and, for a damaged file, ``damaged``: the findings, one per dataset that
    fails. What a damaged file still lets be read is described; the rest is left out.
    """
    findings = check_packed(path) if verify else []
    try:
        out = _describe(path)
    except DataError:
        if not findings:
            raise
        out = {"file": str(path)}  # too damaged to describe: the findings say why
    if verify:
        out["verified"] = not findings
        if findings:
            out["damaged"] = findings
    return out


def _describe(path) -> dict:
    f, info = open_packed(path)
    with f:
        out = {"file": info.path, "dataset": info.kind, "schema_version": info.schema_version,
               **{k: v for k, v in info.attrs.items() if k not in ("dataset", "schema_version")}}
        datasets = {}
        for name in required_datasets(info.kind, info.attrs):
            ds = f[name]
            sha = ds.attrs.get("sha256")
            datasets[name] = {"dtype": "str" if ds.dtype.kind == "O" else str(ds.dtype), "shape": list(ds.shape),
                              "sha256": sha.decode() if isinstance(sha, bytes) else sha}
        sizes = {}
        if info.kind == "omniglot":
            with reading(path, "set"):
                sets = f["set"].asstr()[()]
            drawings = f["images28"].shape[1]
            for s in ("background", "evaluation"):
                n = int((sets == s).sum())
                sizes[s] = _sizes(np.full(n, drawings))
            example_shape = f["images28"].shape[2:]
        elif info.kind == "miniimagenet":
            for split in info.attrs["splits"]:
                shape = f[f"{split}/images"].shape
                sizes[split] = _sizes(np.full(shape[0], shape[1]))
            example_shape = shape[2:]
        else:
            for split in info.attrs["splits"]:
                with reading(path, f"{split}/offsets"):
                    sizes[split] = _sizes(np.diff(f[f"{split}/offsets"][()]))
                example_shape = f[f"{split}/images"].shape[1:]
    out.update(split_sizes=sizes, example_shape=[int(n) for n in example_shape], datasets=datasets,
               image_spec=ImageSpec.for_packed(path).as_dict())
    return out


def _sizes(per_class) -> dict:
    per_class = np.asarray(per_class)
    low, high = (int(per_class.min()), int(per_class.max())) if per_class.size else (0, 0)
    return {"classes": int(per_class.size), "examples": int(per_class.sum()),
            "examples_per_class": {"min": low, "max": high}}
