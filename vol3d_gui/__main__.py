from vol3d_gui.cli import main

raise SystemExit(main())
