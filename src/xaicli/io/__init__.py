"""Image and output I/O, one concern per module (none imports TensorFlow):

* :mod:`xaicli.io.discover` -- finding inputs, naming outputs, matching masks to images;
* :mod:`xaicli.io.read` -- reading every image kind (and saved maps) as float32 in [0, 1];
* :mod:`xaicli.io.render` -- display normalisation, colour maps, overlays; :mod:`xaicli.io.grid` the
  comparison grid;
* :mod:`xaicli.io.write` -- atomic, race-free writers, CSV and JSON.
"""

from xaicli.io.discover import (
    MaskMatcher,
    Source,
    discover,
    is_image_file,
    iter_image_files,
    output_names,
)
from xaicli.io.read import (
    IMAGE_SUFFIXES,
    load_map,
    read_image,
    read_mask,
    resize,
    sniff_format,
    to_channels,
)
from xaicli.io.render import COLORMAPS, colorize, normalize_map, overlay
from xaicli.io.write import (
    AtomicFile,
    CsvStream,
    atomic_output,
    check_outputs,
    csv_value,
    encode_png,
    to_json,
    write_bytes,
    write_csv,
    write_json,
    write_npy,
    write_npz,
    write_png,
)

__all__ = [
    "COLORMAPS", "IMAGE_SUFFIXES", "AtomicFile", "CsvStream", "MaskMatcher", "Source", "atomic_output", "check_outputs",
    "colorize", "csv_value", "discover", "encode_png", "is_image_file", "iter_image_files", "load_map",
    "normalize_map", "output_names", "overlay", "read_image", "read_mask", "resize", "sniff_format",
    "to_channels", "to_json", "write_bytes", "write_csv", "write_json", "write_npy", "write_npz", "write_png",
]
