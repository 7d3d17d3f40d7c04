"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

By concern (each module's docstring cites the standard it follows):

- ``profile``: Table E.1-1 (as data, ``table_e1_1.csv``) and the options resolved into one action
  per tag; ``recipe``: the YAML site recipes; ``unlisted``: attributes the table does not list;
- ``settings``: what a run is told and what it says of a file;
- ``identities``: keyed UIDs, pseudonyms and date offsets, and a data set's identifying values;
  ``masking``: finding and masking them in text; ``dates``: moving dates and times;
- ``elements``: raw element access; ``actions``: the Annex E walk, one handler per kind of
  element; ``privates``: private attributes; ``marks``: the de-identification marks and pixels;
- ``detect``: which files are DICOM; ``encoder``: the fast encoder; ``writer``: the atomic writer;
- ``fileproc``: one file; ``runner``: the worker processes; ``journal``: the run journal;
  ``plan`` and ``batch``: a whole run with its audit, report and path map;
- ``checker`` and ``leaks``: ``--check`` and ``--check --against``.

Nothing here imports typer or rich.
"""
