from rtcc.cli import main

raise SystemExit(main())
