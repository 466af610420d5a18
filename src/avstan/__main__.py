from avstan.cli import main

raise SystemExit(main())
