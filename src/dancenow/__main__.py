from dancenow.cli import main

raise SystemExit(main())
