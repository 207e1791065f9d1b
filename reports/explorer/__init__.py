"""The dialogue explorer (``harness view RUN... --out DIR``): a static site of a run's dialogues, opened from disk.

Layers, each importing only those above it: ``data`` (runs, benchmark and traces read back, dialogue selection),
``thumbnails`` (small JPEGs of the images shown, written into the site), ``pages`` (the HTML), ``site`` (writes the
folder). ``assets/`` holds the CSS and the vanilla JavaScript every page links. Of the other folders it imports
``harness`` and ``reports.runs`` only.
"""
