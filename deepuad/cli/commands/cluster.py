"""``deepuad cluster``: the initial clustering and selection."""

from pathlib import Path
from typing import Annotated

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import CLUSTER_METHOD_OPTIONS, ClusterPaper, Json, Output, refuse_unused, spec_values, with_spec_options

HELP = """Initial clustering: choose the first 'normal' training set from low-variance clusters.

Methods: gmm (default; the paper's choice for tabular data), kmeans, hdbscan, and distribution
(distribution clustering, Lin et al. CVPR 2018: the paper's choice for image and video
features). Distribution clustering finds the number of clusters itself and leaves outliers
unclustered; its three parameters, in plain words:

--thres: how alike two points' distance profiles (their distances to everything else) must
be to count as samples of the same distribution. Too small and almost nothing clusters (most
rows stay unclustered); too large and distinct distributions merge. Calibrate it with
--thres auto: the median nearest-neighbour profile distance, i.e. the noise floor two samples
of one distribution show (then look at 'unclustered' in the summary and adjust).

--min-clus: a cluster needs more than this many points; smaller groups stay unclustered.

--max-dist: stop seeding new clusters once the closest remaining pair of unclustered points is
at least this far apart (squared distance on unit vectors, so between 0 and 4).

Paper values (Table 9): MNIST 0.1/7/1.4, CIFAR-10 and cats-vs-dogs 0.06/5/1.4, video 0.05/4/1.5.
"""


ClustersFile = Output("Output file [default: <stem>.clusters.h5].")


@app.command(help=HELP, epilog="Examples: deepuad cluster kdd.features.h5 --p0 35 ; deepuad cluster cifar.features.h5 "
             "--method distribution --thres 0.06 --min-clus 5 --max-dist 1.4")
@with_spec_options("cluster", after="output")
def cluster(
    ctx: typer.Context,
    features_path: Annotated[Path, typer.Argument(metavar="features", help="A features file from 'deepuad extract'.")],
    output: ClustersFile = None,
    paper: ClusterPaper = False,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    from deepuad.estimators.params import METHOD_SPEC
    from deepuad.stages.cluster import cluster as stage

    refuse_unused(ctx, "init_method", CLUSTER_METHOD_OPTIONS)
    values = spec_values("cluster", options, paper)
    method_options = {name: values.pop(name) for name in METHOD_SPEC}
    run_stage(stage, as_json, "cluster", features_path=features_path, output=output, method_options=method_options, **values)
