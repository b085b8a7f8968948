"""``deepuad extract``: raw data -> a features file."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from deepuad.cli.app import app, run_stage
from deepuad.cli.options import (
    AnomalyValues, Categorical, Device, Drop, IdColumns, Json, LabelColumn, Missing, Output, Scale, parse_size, spec_values,
    table_options, with_spec_options,
)
from deepuad.stages.defaults import DEVICE, EXTRACT

EXAMPLES = """Examples:

  deepuad extract kdd.csv --label-column label --anomaly-values normal.

  deepuad extract t10k-images-idx3-ubyte.gz --labels t10k-labels-idx1-ubyte.gz --normal-class 4 --anomaly-ratio 0.05

  deepuad extract photos/ --size 32x32 --grayscale            (a folder of images; class = first sub-folder)

  deepuad extract photos/ --model resnet18.pt --size 224x224  (features from your TorchScript model)

  deepuad extract c3d/ --annotations Temporal_Anomaly_Annotation_for_Testing_Videos.txt --per-video
"""


FeaturesFile = Output("Output file [default: <input stem>.features.h5 beside the input].")


@app.command(epilog=EXAMPLES)
@with_spec_options("extract", after="device")
def extract(
    input_path: Annotated[Path, typer.Argument(
        metavar="input", help="CSV/TSV with a header (.gz ok), Parquet or Arrow/Feather, .npy, .npz (X, optional y), MNIST "
        "IDX, a folder of images, or a folder of per-video feature files.")],
    output: FeaturesFile = None,
    like: Annotated[Optional[Path], typer.Option(
        "--like", help="Encode exactly like this features file (same columns, vocabularies, scaler).")] = None,
    input_type: Annotated[str, typer.Option("--type", help="auto, table, numpy, idx, images or video.")] = EXTRACT["input_type"],
    categorical: Categorical = None,
    drop: Drop = None,
    label_column: LabelColumn = None,
    anomaly_values: AnomalyValues = None,
    scale: Scale = None,
    missing: Missing = None,
    id_columns: IdColumns = None,
    chunk_rows: Annotated[int, typer.Option(
        "--chunk-rows", help="Rows read per chunk (memory bound for big CSVs).")] = EXTRACT["chunk_rows"],
    text_encoding: Annotated[str, typer.Option("--encoding", help="Text encoding of a CSV/TSV.")] = EXTRACT["text_encoding"],
    compress: Annotated[bool, typer.Option("--compress", help="gzip-compress X in the HDF5 file.")] = False,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="MNIST: the labels IDX file (kept as class_label).")] = None,
    size: Annotated[str, typer.Option("--size", help="Images: resize to HEIGHTxWIDTH.")] = "x".join(map(str, EXTRACT["size"])),
    grayscale: Annotated[bool, typer.Option("--grayscale", help="Images: convert to one channel.")] = False,
    model: Annotated[Optional[Path], typer.Option(
        "--model", help="Images: a TorchScript feature extractor (runs your model's code: only models you trust).")] = None,
    annotations: Annotated[Optional[Path], typer.Option(
        "--annotations", help="Video: UCF-Crime temporal annotation file; a segment overlapping an interval is an anomaly.")] = None,
    segment_frames: Annotated[float, typer.Option(
        "--segment-frames", help="Video: frames per feature row (C3D: 16).")] = EXTRACT["segment_frames"],
    per_video: Annotated[bool, typer.Option(
        "--per-video", help="Video: one features file per video in folder -o (one model per video, as in the paper).")] = False,
    normal_class: Annotated[Optional[str], typer.Option("--normal-class", help="Labelled sets: this class is normal ...")] = None,
    anomaly_ratio: Annotated[Optional[float], typer.Option(
        "--anomaly-ratio", help="... and the other classes are sampled evenly to this share of anomalies.")] = None,
    device: Device = DEVICE,
    as_json: Json = False,
    **options,  # the spec's options (with_spec_options)
):
    """Turn raw data into a features file: X (float32), optional y, and the fitted encoding."""
    from deepuad.stages.extract import extract as stage

    run_stage(stage, as_json, "extract", input_path=input_path, output=output, like=like, input_type=input_type,
              **table_options(categorical, drop, label_column, anomaly_values, scale, missing, id_columns),
              chunk_rows=chunk_rows, text_encoding=text_encoding, compress=compress, labels=labels, size=parse_size(size),
              grayscale=grayscale, model=model, device=device, annotations=annotations, segment_frames=segment_frames,
              per_video=per_video, normal_class=normal_class, anomaly_ratio=anomaly_ratio,
              **spec_values("extract", options))
