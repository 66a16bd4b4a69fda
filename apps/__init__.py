"""apps: the Gradio upload-and-generate page (`python -m apps.gradio_app`).

Importing this package switches off everything that could reach the network from gradio or the
Hugging Face libraries (analytics, telemetry, hub look-ups) unless the caller set these already.
"""

from __future__ import annotations

from eclip_core.runtime import setup_offline

setup_offline()
