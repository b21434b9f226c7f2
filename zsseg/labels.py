"""Label conventions shared by every dataset, cache and metric: class index 0 is background, 255 is ignored."""

IGNORE_INDEX = 255
