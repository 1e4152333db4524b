"""yolov4.evaluation: mAP and the confusion matrix, a model measured on a dataset,
detections drawn, and the training curves and tables as pictures."""
