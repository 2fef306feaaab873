"""Walkthroughs, exercises and pictures: everything here reads traces, nothing recomputes the math.

walkthrough/   the seeds' example (or yours) step by step: stages, text, Markdown, JSON, a web page
exercise/      a fresh by-hand exercise, its worksheet and answer key
gradients.py   why gating matters: gradient reaching each earlier input (gradients_table.py renders it)
trained/       what a trained model does: recordings, pictures, the report page
html.py        self-contained HTML pages;  numbers.py  how numbers are written (text and JSON)
"""
