#!/usr/bin/env python3
"""Drops the page cache of each file named (posix_fadvise DONTNEED), for scripts/bench's
peak RSS: a program's resident pages depend on how the page cache of its binary was
filled. A binary just written (by cargo, or by dpkg) sits in large folios, which a
fault maps whole: 2-3 MiB more RSS than the same binary read in by its faults, as it is
after a reboot. Every command measured gets the same treatment, the reference too."""
import os
import sys

for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
