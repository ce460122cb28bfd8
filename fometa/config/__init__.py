"""Run configuration: one frozen dataclass per concern, the paper's settings as named presets.

A :class:`RunConfig` aggregates a :class:`DataConfig`, :class:`ModelConfig`, :class:`InnerConfig`,
:class:`OuterConfig` and :class:`EvaluationConfig`, plus the run-level settings (seed, backend,
meta-iterations, evaluation and checkpoint cadence). Three modules, one concern each:

* :mod:`fometa.config.schema`: the settings, their descriptions and their checks;
* :mod:`fometa.config.presets`: the paper's settings as data, and fitting a run to any images;
* :mod:`fometa.config.io`: settings read and written (dicts, TOML and JSON files, flags).

Every user error is a :class:`ConfigError`.
"""
from fometa.config import io, presets, schema
from fometa.config.io import *  # noqa: F403 - this package's face: the names of its three modules
from fometa.config.presets import *  # noqa: F403
from fometa.config.schema import *  # noqa: F403

__all__ = schema.__all__ + presets.__all__ + io.__all__
