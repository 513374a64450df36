"""det_engine: the training, evaluation and distributed machinery of the det toolbox.

The modules here are model- and dataset-independent: ``schedule`` (learning rate, SGD,
gradient clipping), ``checkpoint`` (atomic save/load), ``evaluation`` (COCO and VOC
metrics), ``logging`` (metric logger, progress bar), ``distributed`` (torchrun helpers)
and ``guard`` (non-finite loss check); ``data`` makes a zoo row's DataConfig into det-data
datasets and transforms, the one data path of every command line.
"""

__version__ = "0.1.0"
