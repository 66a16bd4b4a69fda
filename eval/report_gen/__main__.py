"""``python -m eval.report_gen``: see eval.report_gen.cli."""

from eval.report_gen.cli import main

raise SystemExit(main())
