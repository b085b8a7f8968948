"""The on-disk format: every HDF5 artifact deepuad reads or writes goes through this package.

- ``envelope``: the attributes every artifact carries, ``write_artifact`` / ``open_artifact``,
  the content fingerprint, and the registry of kinds
- ``atomic``: temporary name + rename, the per-folder writer lock, failed writes survived
- ``safe_read``: reading a file without trusting it (links, filters, declared sizes, JSON depth)
- one module per kind, each with its schema, writer, reader (dispatching on the file's schema
  version) and ``describe``: ``features``, ``clusters``, ``model``, ``scores``, ``shard`` (scores_shard)

``from deepuad import artifacts as art`` gives the shared API below.
"""

from deepuad.artifacts.atomic import (  # noqa: F401
    _interrupts_held_in_driver, _SafeFile, check_output_path, is_same_or_inside, write_file_atomically,
)
from deepuad.artifacts.envelope import (  # noqa: F401
    DESCRIPTIONS, KINDS, OLDEST_SCHEMA_VERSION, SCHEMA_VERSION, Kind, _datasets, _json_default, content_fingerprint,
    fingerprint_of, inputs_of, open_artifact, params_of, put, put_json, register, require_made_from, schema_version,
    write_artifact,
)
from deepuad.artifacts.safe_read import (  # noqa: F401
    MAX_LAYERS, MAX_WIDTH, attr_json, finite_threshold, json_text_depth, read_array, read_json, read_strings,
)

# the kinds register themselves on import, in this order (KINDS keeps it)
from deepuad.artifacts import features, clusters, model, scores, shard  # noqa: E402, F401, I001
from deepuad.artifacts.shard import shard_rows  # noqa: E402, F401
