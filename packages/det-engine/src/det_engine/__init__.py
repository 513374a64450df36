"""det_engine: the training, evaluation, export and distributed machinery of the det toolbox.

The library (model- and dataset-independent, except where it says):

- ``run``: a training run from start to end, the one sequence of every command that trains
  (device, seeds, data check and datasets, loader, Trainer, resume, exit codes, evaluation,
  eval.json); ``trainer`` (the loop; ``set_length`` for a budget), ``schedule`` (SGD or
  AdamW; warmup with steps or cosine decay; clipping), ``budget`` (a run fitted to a
  wall-clock budget), ``checkpoint`` (atomic save/load, with the run record), ``guard``
  (non-finite losses), ``backbone_init`` (a zoo row's ImageNet initialisation).
- ``data``: a DataConfig made into det-data datasets and transforms; ``preflight`` (the data
  check before training); ``recipes``: runs that are not zoo rows, and ``quickstart_run``
  (the quickstart's run on the shapes set).
- ``evaluation``: COCO and VOC metrics and the evaluation loop; ``metric_log`` (metric
  logger, progress bar); ``curves`` (a run's curves read and drawn); ``distributed``
  (torchrun helpers); ``runtime`` (seed, device, mixed precision); ``visualize`` (drawing
  detections).
- ``onnx_export`` (a detector written as ONNX with standard operators) and
  ``onnx_detector`` (an exported detector run in onnxruntime on image files).

The applications are in ``det_engine.apps``: they parse arguments and call the library, and
run as ``python -m det_engine.train`` (test, demo, quickstart, shapes_zoo, bench, plot,
export, deploy, data).
"""

__version__ = "0.1.0"
