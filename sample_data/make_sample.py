"""Rebuild sample_data/kddcup99_5k.csv.gz from the KDDCUP99 10% file (see README.md here).

    python sample_data/make_sample.py ../shared/data/kddcup99
"""

import gzip
import sys
from pathlib import Path

import numpy as np

source = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/kddcup99")
names = [line.split(":")[0] for line in (source / "kddcup.names").read_text().splitlines()[1:] if ":" in line]
rows = gzip.open(source / "kddcup.data_10_percent.gz", "rt").read().splitlines()
picked = np.sort(np.random.default_rng(0).choice(len(rows), size=5000, replace=False))
with gzip.GzipFile(Path(__file__).with_name("kddcup99_5k.csv.gz"), "wb", mtime=0) as out:
    out.write((",".join(names + ["label"]) + "\n").encode())
    for i in picked:
        out.write((rows[i] + "\n").encode())
