"""apps: the Gradio upload-and-generate page (`python -m apps.gradio_app`).

Importing this package switches off everything that could reach the network from gradio or the
Hugging Face libraries (analytics, telemetry, hub look-ups) unless the caller set these already.
"""
from __future__ import annotations

import os

for _key, _value in {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_EVALUATE_OFFLINE": "1",
}.items():
    os.environ.setdefault(_key, _value)
