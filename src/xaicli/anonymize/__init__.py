"""DICOM de-identification: the PS3.15 Annex E Basic Application Level Confidentiality Profile.

``profile`` holds Table E.1-1 (as data) and the option resolution, ``engine`` the walk over every
depth of a file and the parallel batch, ``batch`` planning, audit and the check mode, ``recipe``
the YAML site recipes. Nothing here imports typer or rich.
"""
