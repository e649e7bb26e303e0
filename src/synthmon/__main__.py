from synthmon.cli import main

raise SystemExit(main())
