"""airinfer physical layer."""
