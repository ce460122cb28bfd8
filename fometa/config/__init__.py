"""Run configuration: one frozen dataclass per concern, the paper's settings as named presets.

A :class:`RunConfig` aggregates a :class:`DataConfig`, :class:`ModelConfig`, :class:`InnerConfig`,
:class:`OuterConfig` and :class:`EvaluationConfig`, plus the run-level settings (seed, backend,
meta-iterations, evaluation and checkpoint cadence). Three modules, one concern each:

* :mod:`fometa.config.schema`: the settings, their descriptions and their checks;
* :mod:`fometa.config.presets`: the paper's settings as data, and fitting a run to any images;
* :mod:`fometa.config.io`: settings read and written (dicts, TOML and JSON files, flags).

Every user error is a :class:`ConfigError`.
"""
from fometa.config.io import (
    ALIASES,
    DEPRECATED,
    RETIRED,
    apply_overrides,
    diff,
    flag,
    flatten,
    from_dict,
    load_file,
    new_run_config,
    parse_value,
    resumed_run_config,
    to_dict,
)
from fometa.config.presets import PRESET_SETTINGS, PRESETS, closest_preset, for_images, preset
from fometa.config.schema import (
    ALGORITHMS,
    ARCHS,
    DATASETS,
    DESCRIPTIONS,
    EVAL_MODES,
    IMAGE_ARCHS,
    INITS,
    KIND_IMAGES,
    RESUME_FREE,
    ConfigError,
    DataConfig,
    EvaluationConfig,
    InnerConfig,
    ModelConfig,
    OuterConfig,
    RunConfig,
    build,
    input_spec,
    parse_image_spec,
    setting_type,
    settings,
)

__all__ = [
    "ConfigError", "DataConfig", "ModelConfig", "InnerConfig", "OuterConfig", "EvaluationConfig", "RunConfig",
    "DATASETS", "ARCHS", "IMAGE_ARCHS", "KIND_IMAGES", "INITS", "ALGORITHMS", "EVAL_MODES", "DESCRIPTIONS",
    "RESUME_FREE", "settings", "setting_type", "parse_image_spec", "input_spec", "build",
    "PRESET_SETTINGS", "PRESETS", "preset", "closest_preset", "for_images",
    "to_dict", "from_dict", "flatten", "parse_value", "apply_overrides", "load_file", "diff", "new_run_config",
    "resumed_run_config", "RETIRED", "flag",
    "ALIASES", "DEPRECATED",
]
