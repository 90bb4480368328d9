"""Qt user interface: windows, views, panels, dialogs and the ML worker."""
