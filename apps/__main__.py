"""`python -m apps` is `python -m apps.gradio_app`."""

import sys

from apps.gradio_app import main

sys.exit(main())
