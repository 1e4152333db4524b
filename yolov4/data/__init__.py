"""yolov4.data: datasets in the formats people have, the built-in dataset, augmentations
(the bag of freebies) and a seeded loader that yields what ``get_loss`` takes."""
