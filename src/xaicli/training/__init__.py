"""Training: fit a model plugin (train), the Grad-CAM consistency regulariser, and the study."""
