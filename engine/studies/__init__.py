"""Studies: a store in, a typed report out, built from the measures."""
