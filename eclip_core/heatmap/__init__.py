"""Expert maps: the heatmap processor (processor.py) and gaze/box -> heatmap recipes (gaze.py, boxes.py)."""
