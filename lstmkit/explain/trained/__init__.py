"""What a trained run's model does: its gates and states recorded for one input, pictures of them, one report page.

recording.py   every gate and state of a trained model for one input, as named NumPy arrays
pictures.py    PNG pictures drawn from a recording (figures.py: what they share; text_pictures.py: text on colour)
report.py      a training run on one self-contained HTML page
"""
