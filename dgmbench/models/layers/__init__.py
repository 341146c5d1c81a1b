"""Building blocks shared by several models (no registrations here)."""
