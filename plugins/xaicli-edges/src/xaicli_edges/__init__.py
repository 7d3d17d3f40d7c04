"""An edge-detector baseline explainer for xaicli (example third-party plugin).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim (2018). Sanity Checks for Saliency Maps. NeurIPS.
The paper uses an edge detector as a model-independent reference: a saliency method whose maps
look like this one's explains the image, not the model.
"""

from __future__ import annotations

import numpy as np

from xaicli.api import Explainer, Target


class EdgeBaseline(Explainer):
    """Sobel gradient magnitude of the (channel-averaged) input; ignores the model and the target.

    Parameters:
        ksize: Sobel kernel size, 1, 3, 5 or 7 (default 3).
        blur: Gaussian blur sigma applied before differentiating, in pixels (default 0: none).
    """

    name = "edges"
    needs_gradients = False

    def __init__(self, ksize: int = 3, blur: float = 0.0) -> None:
        if ksize not in (1, 3, 5, 7):
            raise ValueError(f"ksize must be 1, 3, 5 or 7, not {ksize}")
        if blur < 0:
            raise ValueError(f"blur must be >= 0, not {blur}")
        super().__init__(ksize=ksize, blur=blur)
        self.ksize = ksize
        self.blur = blur

    def explain(self, runner, images: np.ndarray, target: Target) -> np.ndarray:
        import cv2

        maps = []
        for image in np.asarray(images, dtype=np.float32):
            gray = image.mean(axis=2)
            if self.blur > 0:
                gray = cv2.GaussianBlur(gray, (0, 0), self.blur)
            dx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=self.ksize)
            dy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=self.ksize)
            maps.append(np.sqrt(dx * dx + dy * dy))
        return np.stack(maps).astype(np.float32)
