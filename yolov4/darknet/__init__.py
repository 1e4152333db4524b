"""yolov4.darknet: darknet's cfg format, its ``.weights`` files, the layer table it prints,
and darknet's own cfg files, shipped in ``files/``."""
