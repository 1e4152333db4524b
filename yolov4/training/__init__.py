"""yolov4.training: the trainer and its settings, the weight EMA, checkpoints, run folders,
fine-tuning's start, and the commands that train many short runs (``evolve``, ``ablate``)."""
