"""The configurations of DeepUAD that bench/panel.py can run as `deepuad:NAME` and that
bench/choose_defaults.py chooses among on the tuning half.

Each entry is DeepUAD's keyword overrides (deepuad.estimators.detector.DeepUAD); {} is the
package's defaults. Add a candidate here before its tuning runs, so the choice can be re-run from
the committed file; choose_defaults breaks ties towards fewer overrides.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepuad.estimators.params import PAPER_READING  # noqa: E402

CANDIDATES: dict[str, dict] = {
    "default": {},
    "paper": dict(PAPER_READING),
    # issue 29's candidates (deepuad/estimators/parts.py, cleaning.py), run on the tuning half at seed 0
    "distance-trim": {"score": "distance", "init_by": "trim", "reselect_by": "trim"},
    "distance-forest": {"score": "distance+forest"},
    "distance-forest-trim": {"score": "distance+forest", "init_by": "trim", "reselect_by": "trim"},
    "distance-forest-trim-init": {"score": "distance+forest", "init_by": "trim"},
}
