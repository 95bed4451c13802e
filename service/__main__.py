"""``python -m service``: the same as the ``tumour-response`` command."""

from service.entrypoints.cli import main

raise SystemExit(main())
