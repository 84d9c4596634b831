"""Transfer: a source dance onto the trained target."""
