"""`python -m relmodel.operator`: run the operator."""

from relmodel.operator.main import main

raise SystemExit(main())
