"""``fometa sine``: meta-train the sine-wave MLP and report the MSE after 32 adaptation steps (the paper's Figure 1).

The settings are the ``sine`` preset's, under the flags ``fometa train`` gives them
(``--algorithm``, ``--meta-iters``, ``--seed``, ``--eval-tasks``, ``--backend``). The last line of
output is one JSON object with ``mse_trained``, ``mse_untrained`` and ``seconds``.
"""
from __future__ import annotations

import json
import sys

from fometa import config
from fometa.commands.options import add_setting_arguments, overrides_from_args, user_error
from fometa.experiments import sine_wave

#: the settings of the sine preset this command takes
SETTINGS = ("outer.algorithm", "meta_iters", "seed", "eval.tasks", "backend")


def add_arguments(p):
    p.add_argument("--plot", metavar="FILE.png", default=None, help="write the paper's Figure 1 (needs matplotlib)")
    add_setting_arguments(p.add_argument_group("settings (override the sine preset)"), SETTINGS,
                          "the sine preset's", notes={"backend": "$FOMETA_BACKEND, else numpy"})


def run(args) -> int:
    try:
        cfg = config.apply_overrides(sine_wave.config(), overrides_from_args(args, SETTINGS))
    except config.ConfigError as exc:
        raise user_error(exc, args) from None
    plot = args.plot
    if plot is not None:
        try:
            import matplotlib  # noqa: F401 - imported to see that it is installed
        except ImportError:
            print("fometa sine: matplotlib is not installed; skipping --plot (pip install 'fometa[plot]')",
                  file=sys.stderr)
            plot = None
    result = sine_wave.run(cfg, plot, progress=True)
    print(f"MSE after 32 steps: trained {result['mse_trained']:.4f}, untrained {result['mse_untrained']:.4f}")
    print(json.dumps(result), flush=True)
    return 0
