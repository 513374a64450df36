"""det_engine: the training, evaluation and distributed machinery of the det toolbox.

The library (model- and dataset-independent, except where it says):

- ``training``: a RunConfig, a model and a dataset made into a Trainer, and the run's
  evaluation, the one path of every command; ``trainer`` (the loop), ``schedule`` (learning
  rate, optimizers, clipping), ``budget`` (a run fitted to a wall-clock budget),
  ``checkpoint`` (atomic save/load, with the run record), ``guard`` (non-finite losses).
- ``data``: a DataConfig made into det-data datasets and transforms; ``recipes``: runs that
  are not zoo rows (the quickstart's).
- ``evaluation``: COCO and VOC metrics and the evaluation loop; ``metric_log`` (metric
  logger, progress bar); ``distributed`` (torchrun helpers); ``runtime`` (seed, device);
  ``visualize`` (drawing detections).

The applications are in ``det_engine.apps`` and run as ``python -m det_engine.train`` (test,
demo, quickstart, shapes_zoo, bench, plot).
"""

__version__ = "0.1.0"
