"""Live views for the labs: thin widgets over board and device state (no logic lives here)."""
