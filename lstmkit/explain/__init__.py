"""Walkthroughs and pictures of the cells: everything here reads traces, nothing recomputes the math."""
